"""`robot-stack data info|ls|show|video|verify STORE`: look into an episode store; `data merge`: combine stores."""
from __future__ import annotations

import argparse
import json
import sys


def add_parser(sub) -> None:
    data = sub.add_parser("data", help="inspect an episode store").add_subparsers(dest="data_command", required=True)
    for name, help_text in (("info", "the store's summary"), ("ls", "the episode table"),
                            ("verify", "integrity check of every episode and chunk")):
        p = data.add_parser(name, help=help_text)
        p.add_argument("store")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.set_defaults(func=_run)
    show = data.add_parser("show", help="one episode: metadata, per-stream rates and gaps")
    show.add_argument("store")
    show.add_argument("--episode", type=int, default=0)
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_run)
    video = data.add_parser("video", help="MP4 of an episode with the image streams side by side")
    video.add_argument("store")
    video.add_argument("--episode", type=int, default=0)
    video.add_argument("--out", required=True, metavar="FILE")
    video.set_defaults(func=_run, json=False)
    export = data.add_parser("export", help="an episode store as a LeRobot v3.0 dataset or a rosbag2 MCAP file")
    export.add_argument("store")
    export.add_argument("--format", required=True, choices=["lerobot", "mcap"])
    export.add_argument("out", help="lerobot: the new dataset directory; mcap: the new .mcap file")
    export.add_argument("--overwrite", action="store_true", help="replace `out` if it is of the same kind")
    export.add_argument("--episodes", metavar="K,K,...", help="only these episodes (default: all)")
    export.add_argument("--fps", type=int, help="lerobot: the frame rate (default: the clock stream's rate)")
    export.add_argument("--clock", metavar="STREAM", help="lerobot: the stream whose rows become frames "
                                                          "(default: tick, else action_pose)")
    export.add_argument("--vcodec", default="libsvtav1", help="lerobot: video codec (LeRobot's default libsvtav1; "
                                                              "h264, hevc)")
    export.add_argument("--compressed", action="store_true", help="mcap: images as PNG CompressedImage on "
                                                                  "<cam>/color/image_raw/compressed")
    export.set_defaults(func=_run, json=True)
    imp = data.add_parser("import", help="a LeRobot v3.0 dataset or a rosbag2 MCAP file into a new episode store")
    imp.add_argument("src", help="lerobot: the dataset directory; mcap: one or more .mcap files (comma-separated)")
    imp.add_argument("--format", required=True, choices=["lerobot", "mcap"])
    imp.add_argument("out", help="the new episode store")
    imp.add_argument("--overwrite", action="store_true", help="replace `out` if it is an episode store")
    imp.add_argument("--episode", action="append", metavar="START:END", dest="ranges",
                     help="mcap: one episode per time range (seconds, the bag's clock; repeatable). Default: the "
                          "episodes a robot-stack export recorded, else the recorder's service calls or status "
                          "in the bag, else one episode per file")
    imp.add_argument("--namespace", default="", help="mcap: topic namespace of the recorded graph")
    imp.add_argument("--task", default="", help="mcap: task name for the episodes' metadata")
    imp.set_defaults(func=_run, json=True)
    merge = data.add_parser("merge", help="the episodes of several stores into one new store, in seed order")
    merge.add_argument("out", help="the new store")
    merge.add_argument("sources", nargs="+", help="stores to read (their streams must agree)")
    merge.add_argument("--overwrite", action="store_true",
                       help="replace `out` if it is an episode store (never an input, never another directory); "
                            "the old store is swapped out only once the merge is complete")
    merge.add_argument("--drop", action="append", default=[], metavar="STREAM",
                       help="leave this stream out (repeatable), e.g. task_state to mix tasks whose task state differs")
    merge.set_defaults(func=_run, json=True)
    view = data.add_parser("view", help="one episode in rerun: cameras, TCP path, commanded vs measured, phases "
                                        "(needs pip install 'robot_stack[viewer]')")
    view.add_argument("store")
    view.add_argument("--episode", type=int, default=0)
    view.add_argument("--save", metavar="FILE.rrd", help="write a .rrd file (open later with `rerun FILE.rrd`) "
                                                         "instead of showing it")
    view.add_argument("--serve", action="store_true", help="serve the web viewer even where a display could "
                                                           "spawn the native one (the default with no display)")
    view.add_argument("--web-port", type=int, default=9090)
    view.add_argument("--grpc-port", type=int, default=9876)
    view.add_argument("--no-browser", action="store_true", help="--serve: do not open a browser")
    view.add_argument("--lossless", action="store_true", help="raw frames instead of JPEG (large files)")
    view.add_argument("--jpeg-quality", type=int, default=90)
    view.set_defaults(func=_view)


def _view(args: argparse.Namespace) -> int:
    from robot_stack.viewer import view

    result = view(args.store, args.episode, save=args.save, serve=args.serve, web_port=args.web_port,
                  grpc_port=args.grpc_port, lossless=args.lossless, jpeg_quality=args.jpeg_quality,
                  open_browser=not args.no_browser)
    print(json.dumps(result, indent=2, default=str))
    return 0


def _run(args: argparse.Namespace) -> int:
    from robot_stack.data import StoreError

    try:
        return _run_command(args)
    except OSError as exc:
        # an unreadable or unwritable store file (permissions, a full disk, a file where a directory
        # belongs) is bad input like a damaged one: the CLI's one-line error naming it, not a traceback
        where = exc.filename or getattr(args, "store", None) or getattr(args, "out", "")
        raise StoreError(f"{where}: {exc.strerror or exc}") from exc


def _run_command(args: argparse.Namespace) -> int:
    from robot_stack.data import tools

    cmd = args.data_command
    if cmd == "info":
        result = tools.info(args.store)
    elif cmd == "ls":
        result = tools.list_episodes(args.store)
    elif cmd == "show":
        result = tools.show(args.store, args.episode)
    elif cmd == "video":
        result = tools.export_video(args.store, args.episode, args.out)
    elif cmd in ("export", "import"):
        result = _convert(args)
    elif cmd == "merge":
        episodes = tools.merge(args.sources, args.out, overwrite=args.overwrite, progress=sys.stderr.isatty(),
                               attrs={"merged_from": [str(s) for s in args.sources]}, drop=tuple(args.drop))
        result = {"store": args.out, "episodes": episodes, "sources": args.sources}
    else:
        result = tools.verify(args.store)
    if args.json or cmd in ("info", "show", "video", "merge", "export", "import"):
        print(json.dumps(result, indent=2, default=str))
    elif cmd == "ls":
        if result:
            keys = [k for k in ("episode", "task", "robot", "operator", "success", "duration_s", "instruction")
                    if k in result[0]]
            print("  ".join(f"{k:>10}" for k in keys))
            for row in result:
                print("  ".join(f"{str(row.get(k, '')):>10}" for k in keys))
    else:
        for problem in result:
            print(f"episode {problem.get('episode')}: {problem.get('key')}: {problem.get('message')}")
        print("ok: every episode reads back" if not result else f"{len(result)} problem(s)")
    return 1 if cmd == "verify" and result else 0


def _convert(args: argparse.Namespace) -> dict:
    """`data export|import --format lerobot|mcap` (data/lerobot_io.py, data/mcap_io.py)."""
    episodes = None
    if getattr(args, "episodes", None):
        try:
            episodes = [int(k) for k in args.episodes.split(",") if k.strip()]
        except ValueError:
            raise ValueError(f"--episodes: expected comma-separated episode numbers, got {args.episodes!r}") from None
    if args.data_command == "export" and args.format == "lerobot":
        from robot_stack.data.lerobot_io import export_lerobot
        return export_lerobot(args.store, args.out, fps=args.fps, clock=args.clock, vcodec=args.vcodec,
                              overwrite=args.overwrite, episodes=episodes)
    if args.data_command == "export":
        from robot_stack.data.mcap_io import export_mcap
        return export_mcap(args.store, args.out, overwrite=args.overwrite, episodes=episodes,
                           compressed=args.compressed)
    if args.format == "lerobot":
        from robot_stack.data.lerobot_io import import_lerobot
        return import_lerobot(args.src, args.out, overwrite=args.overwrite)
    from robot_stack.data.mcap_io import import_mcap, parse_range
    ranges = [parse_range(r) for r in args.ranges] if args.ranges else None
    return import_mcap([p for p in args.src.split(",") if p], args.out, ranges=ranges, namespace=args.namespace,
                       task=args.task, overwrite=args.overwrite)
