"""`robot-stack human collect|perceive`: human clips in the twin, and the perception that turns them into
wrist trajectories (ZeroMimic's training data)."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    human = sub.add_parser("human", help="human clips in the twin (ZeroMimic): collect, perceive").add_subparsers(
        dest="human_command", required=True)
    col = human.add_parser("collect", help="a floating human hand performs a skill, filmed by a moving head "
                                           "camera; RGB + intrinsics to STORE, ground truth to STORE_truth")
    col.add_argument("--skill", required=True, help="drawer_open | drawer_close | pick_place")
    col.add_argument("--clips", type=int, required=True)
    col.add_argument("--seed", type=int, required=True, help="first seed (keep clear of evaluation seeds)")
    col.add_argument("--out", required=True, metavar="STORE", help="resumed if it holds fewer clips")
    col.add_argument("--no-progress", action="store_true")
    col.set_defaults(func=_collect)
    per = human.add_parser("perceive", help="SfM camera poses and wrist poses per clip -> wrist trajectories "
                                            "in each clip's first camera frame (STORE_wrist)")
    per.add_argument("store")
    per.add_argument("--out", metavar="STORE", help="default: STORE_wrist beside the clips")
    per.add_argument("--scale", choices=["cabinet", "none"], default="cabinet",
                     help="metric scale of the SfM poses: from the cabinet's known height over the table "
                          "plane, or none (SfM's arbitrary unit; the ablation)")
    per.add_argument("--no-sfm", action="store_true", help="ablation: no camera motion correction (every "
                                                          "frame's camera taken as the first one)")
    per.add_argument("--position-noise", type=float, default=0.01, help="wrist error model: m (std)")
    per.add_argument("--orientation-noise", type=float, default=0.08, help="wrist error model: rad (std)")
    per.add_argument("--drop", type=float, default=0.05, help="wrist error model: fraction of frames dropped")
    per.add_argument("--flip", type=float, default=0.02, help="wrist error model: left/right confusions per frame")
    per.add_argument("--seed", type=int, default=0)
    per.add_argument("--limit", type=int, help="only the first N clips")
    per.add_argument("--no-progress", action="store_true")
    per.set_defaults(func=_perceive)
    tr = human.add_parser("train", help="ZeroMimic's skill policy on human clips only (one policy per skill)")
    tr.add_argument("--skill", required=True)
    tr.add_argument("--clips", required=True, metavar="STORE", help="the clip store")
    tr.add_argument("--wrist", metavar="STORE", help="its wrist store (default: STORE_wrist)")
    tr.add_argument("--out", required=True, help="run folder (resumed); the checkpoint is OUT/checkpoint")
    tr.add_argument("--steps", type=int, default=20000)
    tr.add_argument("--batch-size", type=int, default=32)
    tr.add_argument("--max-minutes", type=float)
    tr.add_argument("--threads", type=int, default=1)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="ZeroMimicConfig fields, e.g. hidden=128")
    tr.add_argument("--no-progress", action="store_true")
    tr.set_defaults(func=_train)
    af = human.add_parser("train-affordance",
                          help="the grasp stage's affordance heatmap on human clips' contact points")
    af.add_argument("--clips", required=True, metavar="STORE")
    af.add_argument("--wrist", metavar="STORE")
    af.add_argument("--out", required=True)
    af.add_argument("--steps", type=int, default=400)
    af.set_defaults(func=_train_affordance)
    ev = human.add_parser("eval", help="ZeroMimic episodes on the robot twin: grasp stage, then the skill policy")
    ev.add_argument("--checkpoint", required=True)
    ev.add_argument("--affordance", help="affordance checkpoint (train-affordance)")
    ev.add_argument("--oracle-affordance", action="store_true", help="ablation: the true object point as the "
                                                                       "affordance")
    ev.add_argument("--task", required=True)
    ev.add_argument("--robot", default="panda", choices=["panda", "ur5e"])
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--goal-seed", type=int)
    ev.add_argument("--json", metavar="FILE", help="write the result with per-episode records")
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_eval)


def _collect(args) -> int:
    from robot_stack.human.clips import collect
    print(json.dumps(collect(args.skill, args.clips, args.seed, args.out, progress=not args.no_progress)))
    return 0


def _train(args) -> int:
    import sys

    import yaml

    from robot_stack.policies.zeromimic.train import train
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    wrist = args.wrist or args.clips.removesuffix(".zarr") + "_wrist.zarr"
    print(json.dumps(train(args.skill, args.clips, wrist, args.out, args.steps, args.batch_size, overrides,
                           args.max_minutes, args.seed, args.threads, not args.no_progress,
                           "robot-stack " + " ".join(sys.argv[1:]))))
    return 0


def _train_affordance(args) -> int:
    from robot_stack.policies.zeromimic.affordance import train_affordance
    wrist = args.wrist or args.clips.removesuffix(".zarr") + "_wrist.zarr"
    print(json.dumps(train_affordance(args.clips, wrist, args.out, steps=args.steps)))
    return 0


def _eval(args) -> int:
    from pathlib import Path

    from robot_stack.policies.zeromimic.deploy import evaluate
    result = evaluate(args.checkpoint, args.task, args.robot, args.episodes, args.seed, args.affordance,
                      args.goal_seed, args.oracle_affordance, progress=not args.no_progress)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "records"}))
    return 0


def _perceive(args) -> int:
    from robot_stack.human.perception import WristErrorModel, perceive_store
    errors = WristErrorModel(args.position_noise, args.orientation_noise, args.drop, args.flip)
    print(json.dumps(perceive_store(args.store, args.out, errors=errors, scale=args.scale, sfm=not args.no_sfm,
                                    seed=args.seed, progress=not args.no_progress,
                                    limit=args.limit)))
    return 0
