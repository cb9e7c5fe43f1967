"""What the learner sees and does: the observation spec, the action spec, and conversions to and from the env.

The env (TwinEnv, or RosArmEnv over the graph) speaks dict observations and 7-D delta actions
(translation, rotation vector, gripper in [-1, 1]; see sim/env.DeltaAction). The agent sees
`{"state": float32 vector, <camera>: uint8 HxWx3}` and acts with a continuous twist over the
chosen axes plus, as in HIL-SERL, a discrete gripper action (open / stay / close) chosen by its
own critic. Both specs travel with every transition and every weight message, and their
fingerprint must match before anything is written to a buffer or loaded into a policy.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

GRIP_OPEN, GRIP_STAY, GRIP_CLOSE = 0, 1, 2
GRIP_ACTIONS = ("open", "stay", "close")


class SpecError(ValueError):
    """An observation, action or weight message that does not match the spec."""


# State entries computed from others (robosuite's object-state has the same gripper-to-object
# vector): the TCP-to-object offset makes "above the block, lower" a linear feature for the critic.
DERIVED_STATE = {"object_rel": (("task_state", "ee_pose"), lambda task, ee: np.asarray(task)[:3] - np.asarray(ee)[:3])}


def state_sources(state_keys) -> list[str]:
    """The env observation keys (recorded streams) that `state_keys` are read or computed from."""
    return list(dict.fromkeys(s for k in state_keys for s in (DERIVED_STATE[k][0] if k in DERIVED_STATE else (k,))))


def state_vector(values: dict, state_keys) -> np.ndarray:
    """The agent's "state": the entries of `values` (an env observation or a recorded row) in order."""
    parts = []
    for k in state_keys:
        if k in DERIVED_STATE:
            sources, fn = DERIVED_STATE[k]
            parts.append(np.asarray(fn(*(values[s] for s in sources)), np.float32).ravel())
        else:
            parts.append(np.asarray(values[k], np.float32).ravel())
    return np.concatenate(parts)


@dataclass(frozen=True)
class ObsSpec:
    state_keys: tuple[str, ...]          # env observation keys concatenated into "state", in order
    state_dim: int
    cameras: tuple[str, ...] = ()
    image_size: int = 128

    def shapes(self) -> dict[str, tuple[tuple[int, ...], str]]:
        shapes = {"state": ((self.state_dim,), "float32")}
        shapes.update({c: ((self.image_size, self.image_size, 3), "uint8") for c in self.cameras})
        return shapes

    @classmethod
    def from_env(cls, env_obs: dict, state_keys, cameras=(), image_size: int = 128) -> "ObsSpec":
        missing = [k for k in (*state_sources(state_keys), *cameras) if k not in env_obs]
        if missing:
            raise SpecError(f"the env observation has no {missing}; it has {sorted(env_obs)} "
                            f"(derived: {sorted(DERIVED_STATE)})")
        dim = int(state_vector(env_obs, state_keys).size)
        return cls(tuple(state_keys), dim, tuple(cameras), int(image_size))


@dataclass(frozen=True)
class ActionSpec:
    twist_axes: tuple[int, ...] = (0, 1, 2)   # which of the env's 6 twist entries (x y z rx ry rz) the policy drives
    discrete_gripper: bool = True             # HIL-SERL: a separate critic picks open / stay / close

    @property
    def dim(self) -> int:
        """Size of the continuous action the actor outputs."""
        return len(self.twist_axes) + (0 if self.discrete_gripper else 1)


def fingerprint(obs_spec: ObsSpec, action_spec: ActionSpec) -> str:
    """A short hash both ends compare: same observation layout, same action layout."""
    text = json.dumps({"obs": asdict(obs_spec), "action": asdict(action_spec)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def specs_to_json(obs_spec: ObsSpec, action_spec: ActionSpec) -> dict:
    return {"obs": asdict(obs_spec), "action": asdict(action_spec)}


def specs_from_json(d: dict) -> tuple[ObsSpec, ActionSpec]:
    o, a = d["obs"], d["action"]
    return (ObsSpec(tuple(o["state_keys"]), int(o["state_dim"]), tuple(o["cameras"]), int(o["image_size"])),
            ActionSpec(tuple(a["twist_axes"]), bool(a["discrete_gripper"])))


def agent_obs(env_obs: dict, spec: ObsSpec) -> dict[str, np.ndarray]:
    """The agent's observation from an env observation."""
    obs = {"state": state_vector(env_obs, spec.state_keys)}
    for cam in spec.cameras:
        obs[cam] = np.asarray(env_obs[cam], np.uint8)
    check_obs(obs, spec)
    return obs


def check_obs(obs: dict, spec: ObsSpec) -> None:
    """Raise SpecError unless `obs` has exactly the spec's keys, shapes and dtypes and finite values."""
    shapes = spec.shapes()
    if set(obs) != set(shapes):
        raise SpecError(f"observation keys {sorted(obs)} do not match the spec's {sorted(shapes)}")
    for key, (shape, dtype) in shapes.items():
        value = np.asarray(obs[key])
        if value.shape != shape or value.dtype != np.dtype(dtype):
            raise SpecError(f"observation {key!r}: got {value.dtype}{list(value.shape)}, expected {dtype}{list(shape)}")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise SpecError(f"observation {key!r} has NaN or inf")


def env_action(action: np.ndarray, grip: int, spec: ActionSpec, gripper_cmd: float) -> tuple[np.ndarray, float]:
    """The env's 7-D action for a policy action; returns it and the gripper command now held (0 open, 1 closed)."""
    action = np.clip(np.asarray(action, np.float64), -1.0, 1.0)
    out = np.zeros(7)
    out[list(spec.twist_axes)] = action[:len(spec.twist_axes)]
    if spec.discrete_gripper:
        gripper_cmd = {GRIP_OPEN: 0.0, GRIP_STAY: gripper_cmd, GRIP_CLOSE: 1.0}[int(grip)]
    else:
        gripper_cmd = float(action[-1] > 0.0)
    out[6] = 2.0 * gripper_cmd - 1.0
    return out, gripper_cmd


def policy_action(executed: np.ndarray, spec: ActionSpec, gripper_before: float) -> tuple[np.ndarray, int, float]:
    """The inverse of env_action for an action somebody else chose (a demo, an intervention).

    Returns the continuous action, the discrete gripper action, and the gripper command after it.
    """
    executed = np.clip(np.asarray(executed, np.float64), -1.0, 1.0)
    closed_before, closed_after = gripper_before > 0.5, executed[6] > 0.0
    grip = GRIP_STAY if closed_before == closed_after else (GRIP_CLOSE if closed_after else GRIP_OPEN)
    cont = executed[list(spec.twist_axes)]
    if not spec.discrete_gripper:
        cont = np.append(cont, 1.0 if closed_after else -1.0)
    return cont.astype(np.float32), grip, float(closed_after)


def grasp_penalty(grip: int, gripper_before: float, gripper_after: float, penalty: float) -> float:
    """HIL-SERL's cost for a gripper action that changed the gripper's state (`penalty` <= 0, else 0)."""
    return penalty if grip != GRIP_STAY and (gripper_before > 0.5) != (gripper_after > 0.5) else 0.0
