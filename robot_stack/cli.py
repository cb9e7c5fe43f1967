"""The `robot-stack` command."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _sim_demo(args: argparse.Namespace) -> int:
    from robot_stack.sim.demo import run_demo

    run_demo(args.task, args.robot, args.episodes, args.seed, video=args.video, json_path=args.json,
             progress=not args.no_progress)
    return 0


# name: (help, the option sizing the run, its default); each is robot_stack.bench.<name>.main(amount, json_path).
BENCHES = {
    "sim": ("physics+control real-time factor and rendering rates", "episodes", 5),
    "control": ("arm_node loop rate, jitter and command latency with cameras running", "seconds", 30.0),
    "controller": ("control loop as arm_node's thread vs its own process: late ticks vs a bare loop with BESO and "
                   "GRIF serving, capture-to-arm, command path (seconds per policy run)", "seconds", 20.0),
    "transport": ("image latency and drops between two processes (seconds of the 640x480 stream)", "seconds", 60.0),
    "recording": ("the recorder node on the live graph: drops, CPU, store size", "seconds", 600.0),
    "data": ("codecs, writer throughput, store size, training read throughput", "seconds", 60.0),
    "policy": ("act() latency per policy; capture-to-arm latency through ROS 2 (seconds per policy)", "seconds", 60.0),
    "learner": ("RLPD gradient updates per second at batch 256, state and image observations", "seconds", 30.0),
    "switch": ("a new /task/instruction to the first chunk that reflects it, through ROS 2 (SwitchVLA)", "switches",
               20),
    "envelope": ("seeded target storms on the twin: measured TCP outside the box, TCP and joint speeds, recovery",
                 "storms", 20),
}


def _bench(args: argparse.Namespace) -> int:
    import importlib

    extra = {"source": args.source} if args.bench == "recording" else {}
    if args.bench == "controller":
        extra = {"target_seconds": args.target_seconds}
    if args.bench == "switch":
        extra = {"checkpoint": args.checkpoint}
    importlib.import_module(f"robot_stack.bench.{args.bench}").main(args.amount, args.json, **extra)
    return 0


def _sim_collect(args: argparse.Namespace) -> int:
    import json

    from robot_stack.sim.expert_data import generate

    print(json.dumps(generate(args.task, args.robot, args.episodes, args.seed, args.out, args.image_size,
                              overwrite=args.overwrite, workers=args.workers, seed_stride=args.seed_stride,
                              progress=not args.no_progress, durable=not args.scratch,
                              position_noise=args.position_noise)))
    return 0


def _sketch_waypoints(args: argparse.Namespace) -> int:
    from robot_stack.waypoint_plans import write_plans

    files, followed = write_plans(args.task, args.robot, args.seed, args.episodes, args.out, check=args.check)
    print(f"{len(files)} waypoint plans for {args.task} ({args.robot}) in {args.out}"
          + (f"; followed with no policy, {followed}/{len(files)} did the task" if args.check else ""))
    return 0


def _train(args: argparse.Namespace) -> int:
    from robot_stack.policies.train import train, train_config

    train(train_config(args.overrides), argv=list(args.overrides))
    return 0


def _train_reward(args: argparse.Namespace) -> int:
    from robot_stack.learner.reward_classifier import main as train_reward_classifier
    return train_reward_classifier(args.overrides)


class _PolicyHelp(argparse.Action):
    """`train --help` lists the registered policies and their config keys (imports torch only when asked)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from robot_stack.policies.train import policy_help
        parser.print_help()
        print("\n" + policy_help())
        parser.exit()


def _checkpoint(args: argparse.Namespace) -> int:
    import json

    from robot_stack.policies.base import read_checkpoint, set_deploy

    if args.checkpoint_command == "set":
        values = {}
        for item in args.settings:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"expected KEY=VALUE, got {item!r}")
            values[key] = _parse_value(value)
        print(json.dumps(set_deploy(args.path, values)))
        return 0
    from robot_stack.policies import discover
    from robot_stack.policies.base import DEPLOY_KEYS

    doc = read_checkpoint(args.path)
    config = doc.get("config", {})
    shown = {"policy": doc.get("policy"), "config": config,
             "manifest": {k: v for k, v in doc.get("manifest", {}).items() if k != "config"}}
    cls = discover().get(str(doc.get("policy")))
    if cls is not None:                 # a policy (not, e.g., a reward classifier): how it is deployed
        defaults = cls.Config()
        shown["conditioning"] = sorted(cls.conditioning)
        shown["deploy"] = {k: config.get(k, getattr(defaults, k)) for k in (*DEPLOY_KEYS, *cls.deploy_keys)}
    print(json.dumps(shown, indent=1))
    return 0


def _parse_value(text: str):
    """A command-line value as YAML types it (2 -> int, 0.3 -> float, true -> bool), without YAML's other tags."""
    import json
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"true": True, "false": False}.get(text.lower(), text)


def _learn(args: argparse.Namespace) -> int:
    import json

    from robot_stack.config import load_config
    from robot_stack.learner.loop import run

    print(json.dumps(run(load_config("learn", args.overrides)), indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from robot_stack.evaluate import run_eval

    import json

    options = {dest: getattr(args, dest) for dest in args.kind_options}
    if args.options_json:                       # a parallel eval's child: the parent's options, whatever kind
        options.update(json.loads(args.options_json))
    report = run_eval(args.checkpoint, args.task, args.robot, args.episodes, args.seed, options=options,
                      conditioning=args.conditioning, backend=args.backend,
                      video=args.video, json_path=args.json, execute_steps=args.execute_steps,
                      chunk_blend=args.chunk_blend, workers=args.workers, records_path=args.records)
    return 0 if report["episodes"] else 1


def _probe(args: argparse.Namespace) -> int:
    import json

    from robot_stack.policies.base import load_policy
    from robot_stack.policies.batches import PolicyBatches, split_episodes
    from robot_stack.policies.probe import format_report, probe

    policy = load_policy(args.checkpoint)
    manifest = json.loads((Path(args.checkpoint) / "config.json").read_text()).get("manifest", {})
    cfg = manifest.get("config", {})
    data = args.data or manifest.get("data")
    if not data:
        raise ValueError(f"{args.checkpoint}: no training data in its manifest; pass --data STORE")
    train_eps, val_eps = split_episodes(data, cfg.get("val_fraction", 0.1), cfg.get("seed", 0), manifest.get("task"))
    episodes = (val_eps if args.split == "val" else train_eps)[: args.episodes]
    rows = probe(policy, PolicyBatches(data, policy.data_spec(), episodes, stats=policy.stats,
                                      conditioning=policy.conditioning))
    print(f"{policy.name} on {len(episodes)} {args.split} episodes of {data}: last chunk step's position error")
    print(format_report(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "split": args.split, "rows": rows}, indent=1))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from robot_stack.bringup_demo import run_bringup_demo

    return run_bringup_demo(args.robot, args.task, args.episodes, args.seed, args.video, args.json, args.image_size,
                            args.store)


def _replay(args: argparse.Namespace) -> int:
    from robot_stack.sim.replay import replay_episode

    r = replay_episode(args.store, args.episode, args.mode, args.video, args.json)
    print(f"episode {r['episode']} ({r['task']}, {r['robot']}, seed {r['seed']}) replayed in {r['mode']} mode: "
          f"recorded success {r['recorded_success']}, replayed success {r['replayed_success']}")
    print(f"  joint error max {r['joint_error_max_rad']:.4f} rad (mean {r['joint_error_mean_rad']:.4f}); "
          f"TCP error max {1000 * r['tcp_error_max_m']:.1f} mm (mean {1000 * r['tcp_error_mean_m']:.1f})")
    if "final_object_error_m" in r:
        print(f"  final object positions differ by at most {1000 * r['final_object_error_m']:.1f} mm")
    if "video" in r:
        print(f"  video: {r['video']}")
    return 0 if r.get("same_outcome") in (True, None) else 1


def _add_kind_options(parser: argparse.ArgumentParser) -> list[str]:
    """Each registered conditioning kind's eval options, in a group of its own; returns their dests."""
    from robot_stack.policies.conditioning import kinds

    dests = []
    for name, kind in sorted(kinds().items()):
        group = parser.add_argument_group(f"{name} conditioning")
        kind.add_arguments(group)
        dests += [action.dest for action in group._group_actions]
    return dests


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-stack", description="ROS 2 control stack for learned manipulation")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("sim", help="the MuJoCo twin").add_subparsers(dest="sim_command", required=True)
    demo = sim.add_parser("demo", help="scripted experts in the twin in-process, no ROS: success per task and robot "
                                       "(`robot-stack demo` runs them through the ROS 2 graph)")
    demo.add_argument("--task", default="all", help="task name, comma-separated names, or 'all'")
    demo.add_argument("--robot", default="panda", help="panda, ur5e, or 'all'")
    demo.add_argument("--episodes", type=int, default=10)
    demo.add_argument("--seed", type=int, default=0, help="first seed; episodes use seed, seed+1, ...")
    demo.add_argument("--video", metavar="DIR", help="write an MP4 per episode (front | wrist) into DIR")
    demo.add_argument("--json", metavar="FILE", help="write the results as JSON")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.set_defaults(func=_sim_demo)

    gen = sim.add_parser("collect", help="scripted-expert episodes straight into a zarr store, in-process, no ROS "
                                         "(fast dataset generation; `robot-stack collect` records through the graph)")
    gen.add_argument("--task", default="pick_place")
    gen.add_argument("--robot", default="panda", choices=["panda", "ur5e"])
    gen.add_argument("--episodes", type=int, default=100)
    gen.add_argument("--seed", type=int, default=1000, help="first seed; evaluation uses seeds below 1000 by default")
    gen.add_argument("--image-size", type=int, default=128)
    gen.add_argument("--out", required=True, metavar="STORE")
    gen.add_argument("--overwrite", action="store_true")
    gen.add_argument("--workers", type=int, default=1, help="expert processes; their shards merge in seed order")
    gen.add_argument("--position-noise", type=float, default=0.0, metavar="M",
                     help="disturb the arm by a drifting offset of this std in metres (DART); the store "
                          "keeps the expert's undisturbed targets as the actions (default 0: off)")
    gen.add_argument("--seed-stride", type=int, default=1, help=argparse.SUPPRESS)   # a worker's seeds: seed, seed+stride, ...
    gen.add_argument("--scratch", action="store_true", help=argparse.SUPPRESS)   # a worker's shard: merged, deleted, no fsync
    gen.add_argument("--no-progress", action="store_true")
    gen.set_defaults(func=_sim_collect)

    train = sub.add_parser("train", help="train a policy: policy=NAME task=T data=STORE [overrides]", add_help=False,
                           description="policy=NAME picks the method, policy.KEY=VALUE sets its config (architecture, "
                                       "lr, deployment settings), other KEY=VALUE override conf/train.yaml")
    train.add_argument("-h", "--help", action=_PolicyHelp, help="show this help, the policies and their config keys")
    train.add_argument("overrides", nargs="*", help="e.g. policy=grif task=pick_place data=STORE steps=5000 policy.lr=3e-4")
    train.set_defaults(func=_train)

    reward = sub.add_parser("train-reward", help="train the success classifier the online learner rewards with: "
                                                 "data=STORE out=DIR [overrides]")
    reward.add_argument("overrides", nargs="*", help="KEY=VALUE settings of the reward classifier run")
    reward.set_defaults(func=_train_reward)

    ckpt = sub.add_parser("checkpoint", help="show a checkpoint, or change how it is deployed").add_subparsers(
        dest="checkpoint_command", required=True)
    show = ckpt.add_parser("show", help="method, conditioning, deployment settings, config and manifest (JSON)")
    show.add_argument("path")
    show.set_defaults(func=_checkpoint)
    setp = ckpt.add_parser("set", help="change deployment settings in place: execute_steps=2 chunk_blend=0.3 "
                                       "(and a method's own, e.g. BESO's guidance)")
    setp.add_argument("path")
    setp.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    setp.set_defaults(func=_checkpoint)

    learn = sub.add_parser("learn", help="online RLPD in the twin in one process: task=T demos=STORE [overrides]")
    learn.add_argument("overrides", nargs="*", help="hydra overrides of conf/learn.yaml, e.g. env_steps=20000")
    learn.set_defaults(func=_learn)

    ev = sub.add_parser("eval", help="closed-loop evaluation of a checkpoint in the twin")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--task", default="pick_place")
    ev.add_argument("--robot", default="panda", choices=["panda", "ur5e"])
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--conditioning", metavar="KIND",
                    help="a registered conditioning kind or none (default: the kind whose options are given, else the "
                         "first the policy accepts that needs none)")
    ev.set_defaults(kind_options=_add_kind_options(ev))
    ev.add_argument("--backend", default="ros", choices=["ros", "sim"],
                    help="ros: through the ROS 2 graph in real time; sim: the same policy in-process, faster than real time")
    ev.add_argument("--execute-steps", type=int,
                    help="chunk steps executed open-loop before the policy decides again (default: the checkpoint's)")
    ev.add_argument("--chunk-blend", type=float,
                    help="temporal ensembling: weight the playing chunk keeps where a new one overlaps it, 0 = replace "
                         "(default: the checkpoint's); the sim backend blends as the ros backend's arm node does")
    ev.add_argument("--workers", type=int, default=1, help="sim backend: episodes spread over this many processes")
    ev.add_argument("--video", metavar="DIR")
    ev.add_argument("--json", metavar="FILE")
    ev.add_argument("--records", metavar="FILE", help=argparse.SUPPRESS)   # a parallel eval's child: progress lines
    ev.add_argument("--options-json", help=argparse.SUPPRESS)           # a parallel eval's child: the kinds' options
    ev.set_defaults(func=_eval)

    pr = sub.add_parser("probe", help="open-loop check of which inputs a checkpoint reads (swap each between episodes)")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--data", help="episode store (default: the one in the checkpoint's manifest)")
    pr.add_argument("--split", default="val", choices=["val", "train"], help="the manifest's held-out or training episodes")
    pr.add_argument("--episodes", type=int, default=40)
    pr.add_argument("--json", metavar="FILE")
    pr.set_defaults(func=_probe)

    demo_ros = sub.add_parser("demo", help="the stack end to end: the twin's ROS 2 graph with scripted episodes through "
                                           "it, recorded and replayed (`robot-stack sim demo`: the experts alone)")
    demo_ros.add_argument("--robot", default="panda", choices=["panda", "ur5e"])
    demo_ros.add_argument("--task", default="pick_place")
    demo_ros.add_argument("--episodes", type=int, default=2)
    demo_ros.add_argument("--seed", type=int, default=0)
    demo_ros.add_argument("--image-size", type=int, default=128)
    demo_ros.add_argument("--video", metavar="DIR", help="write an MP4 per episode from the image topics")
    demo_ros.add_argument("--json", metavar="FILE")
    demo_ros.add_argument("--store", metavar="STORE", help="also record the episodes into this zarr store and replay one")
    demo_ros.set_defaults(func=_demo)

    collect = sub.add_parser("collect", help="record teleoperated (or scripted) episodes through the ROS 2 graph into a "
                                             "zarr store (`robot-stack sim collect`: fast in-process generation)")
    collect.add_argument("--task", default="pick_place")
    collect.add_argument("--robot", default="panda", choices=["panda", "ur5e"])
    collect.add_argument("--teleop", default="scripted", choices=["scripted", "spacemouse", "keyboard", "gamepad"])
    collect.add_argument("--episodes", type=int, default=5)
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument("--out", required=True, metavar="STORE")
    collect.set_defaults(func=lambda a: __import__("robot_stack.collect", fromlist=["run_collect"]).run_collect(
        a.task, a.robot, a.teleop, a.episodes, a.out, a.seed))

    replay = sub.add_parser("replay", help="replay a recorded episode in the twin; report tracking error")
    replay.add_argument("store")
    replay.add_argument("--episode", type=int, default=0)
    replay.add_argument("--mode", default="actions", choices=["actions", "joints"])
    replay.add_argument("--video", metavar="FILE")
    replay.add_argument("--json", metavar="FILE")
    replay.set_defaults(func=_replay)

    sketch = sub.add_parser("sketch", help="RT-Trajectory sketches").add_subparsers(dest="sketch_command", required=True)
    draw = sketch.add_parser("draw", help="draw a sketch on the twin's front image in a local web page (127.0.0.1); "
                                          "writes FILE.png and its 3D waypoints FILE.json")
    from robot_stack.sketch_draw import add_arguments as add_sketch_draw_arguments
    add_sketch_draw_arguments(draw)
    draw.set_defaults(func=lambda a: __import__("robot_stack.sketch_draw", fromlist=["run"]).run(a))
    plans = sketch.add_parser("waypoints", help="waypoint plans for the unseen tasks from the scene of each seed, not "
                                                "from the experts: DIR/seed_<N>.json for eval --sketch-waypoints DIR")
    plans.add_argument("--task", required=True)
    plans.add_argument("--robot", default="panda")
    plans.add_argument("--seed", type=int, default=0)
    plans.add_argument("--episodes", type=int, default=100)
    plans.add_argument("--out", required=True, metavar="DIR")
    plans.add_argument("--check", action="store_true", help="also follow each plan in the twin with no policy and "
                                                            "count the seeds where that does the task")
    plans.set_defaults(func=_sketch_waypoints)

    from robot_stack.data_cli import add_parser as add_data_parser
    add_data_parser(sub)
    from robot_stack.human.cli import add_parser as add_human_parser
    add_human_parser(sub)

    # `robot-stack launch ...` goes to the launcher's own parser (main() hands it over before parsing), so
    # `launch --help` and `launch FILE --dry-run` are answered there
    launch = sub.add_parser("launch", help="run a ROS 2 YAML launch file: FILE [name:=value ...]", add_help=False)
    launch.add_argument("launch_argv", nargs=argparse.REMAINDER)
    launch.set_defaults(func=lambda a: __import__("robot_stack.launcher", fromlist=["main"]).main(a.launch_argv))

    bench = sub.add_parser("bench", help="benchmarks that print measured figures").add_subparsers(
        dest="bench_command", required=True)
    for name, (help_text, option, default) in BENCHES.items():
        b = bench.add_parser(name, help=help_text)
        b.add_argument(f"--{option}", type=type(default), default=default, dest="amount", metavar=option.upper())
        if name == "controller":
            b.add_argument("--target-seconds", type=float, default=None, metavar="SECONDS",
                           help="length of the cameras-and-targets runs (default: --seconds)")
        if name == "switch":
            b.add_argument("--checkpoint", metavar="DIR",
                           help="an instruction policy's checkpoint (default: checkpoints/switchvla_pick_place)")
        if name == "recording":
            b.add_argument("--source", choices=["twin", "replay"], default="twin",
                           help="twin: the twin's rendering cameras; replay: pre-rendered frames at exactly 30 Hz")
        b.add_argument("--json", metavar="FILE")
        b.set_defaults(func=_bench, bench=name)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["launch"]:
        from robot_stack.launcher import main as launch_main
        return launch_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except ValueError as exc:      # bad names and arguments: a clear message, no traceback
        print(f"robot-stack: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # A damaged or locked episode store is bad input, not a bug: one line naming the file and
        # episode (the message carries both), exit 2. Imported here: zarr is slow to import, and
        # most commands never open a store. Anything else keeps its traceback.
        from robot_stack.data.errors import StoreError
        if not isinstance(exc, StoreError):
            raise
        print("robot-stack: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
