"""`waypoint`: the task as a 3D point the TCP should reach (a toy kind: one module, nothing else edited).

Hindsight: the point is where the episode's TCP ended. On the graph: geometry_msgs/PointStamped on
/task/waypoint (latched; a NaN point clears it). Eval: the reach task's goal, or `--waypoint x,y,z`.
"""
from __future__ import annotations

import numpy as np
import torch

from robot_stack.policies.conditioning import ConditioningError, ConditioningKind, TaskTopic, register_kind


def _point_type():
    from geometry_msgs.msg import PointStamped
    return PointStamped


def _parse(msg, limits):
    p = np.array([msg.point.x, msg.point.y, msg.point.z])
    if np.isnan(p).all():
        return {"waypoint": None}
    if not np.isfinite(p).all() or np.abs(p).max() > 2.0:
        raise ConditioningError(f"waypoint {p.tolist()} is not a finite point within 2 m of the base")
    return {"waypoint": p}


def _build(task, stamp):
    from robot_stack.ros import convert
    msg = _point_type()(header=convert.header(stamp, "base"))
    p = task.waypoint if task.waypoint is not None else np.full(3, np.nan)
    msg.point.x, msg.point.y, msg.point.z = (float(v) for v in p)
    return msg


@register_kind
class Waypoint(ConditioningKind):
    name = "waypoint"
    fields = {"waypoint": "array"}
    batch_keys = ("waypoint",)

    def batch(self, batches, samples, rng):
        ends = [batches.ds.rows_at("ee_pose", s.episode, [s.last])[0][:3] for s in samples]
        return {"waypoint": torch.as_tensor(np.stack(ends), dtype=torch.float32)}

    def topics(self):
        return [TaskTopic("task/waypoint", _point_type, parse=_parse, build=_build)]

    def add_arguments(self, parser):
        parser.add_argument("--waypoint", metavar="X,Y,Z", help="waypoint: this point (default: the task's goal)")

    def given(self, options):
        return bool(options.get("waypoint"))

    def episode_fields(self, ctx):
        if ctx.options.get("waypoint"):
            return {"waypoint": np.array([float(v) for v in ctx.options["waypoint"].split(",")])}
        if "goal" not in ctx.params:
            raise ValueError(f"task {ctx.task!r} has no goal point; give --waypoint X,Y,Z")
        return {"waypoint": np.asarray(ctx.params["goal"], dtype=float)}

    def example(self, image_size):
        return {"waypoint": np.array([0.5, 0.0, 0.2])}
