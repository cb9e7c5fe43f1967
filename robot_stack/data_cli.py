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
    merge = data.add_parser("merge", help="the episodes of several stores into one new store, in seed order")
    merge.add_argument("out", help="the new store")
    merge.add_argument("sources", nargs="+", help="stores to read (their streams must agree)")
    merge.add_argument("--overwrite", action="store_true",
                       help="replace `out` if it is an episode store (never an input, never another directory); "
                            "the old store is swapped out only once the merge is complete")
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
    elif cmd == "merge":
        episodes = tools.merge(args.sources, args.out, overwrite=args.overwrite, progress=sys.stderr.isatty(),
                               attrs={"merged_from": [str(s) for s in args.sources]})
        result = {"store": args.out, "episodes": episodes, "sources": args.sources}
    else:
        result = tools.verify(args.store)
    if args.json or cmd in ("info", "show", "video", "merge"):
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
