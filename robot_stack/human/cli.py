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
    per.add_argument("--no-progress", action="store_true")
    per.set_defaults(func=_perceive)


def _collect(args) -> int:
    from robot_stack.human.clips import collect
    print(json.dumps(collect(args.skill, args.clips, args.seed, args.out, progress=not args.no_progress)))
    return 0


def _perceive(args) -> int:
    from robot_stack.human.perception import WristErrorModel, perceive_store
    errors = WristErrorModel(args.position_noise, args.orientation_noise, args.drop, args.flip)
    print(json.dumps(perceive_store(args.store, args.out, errors=errors, scale=args.scale, sfm=not args.no_sfm,
                                    seed=args.seed, progress=not args.no_progress)))
    return 0
