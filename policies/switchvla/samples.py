"""SwitchVLA's training samples: forward, rollback and advance, cut from ordinary single-task demonstrations.

No demonstration of a switch is recorded or scripted. A switch sample pairs an observation of one episode
with the instruction of another episode of the same scene (metadata `layout`: the same seed's objects, a
different block to move) and takes its targets from the two demonstrations along their contact phases:

- forward  (previous == current): the episode's own next actions.
- rollback (the instruction changed while in contact): the episode's own motion since the hand started to
  close, reversed: the TCP poses it passed through, newest first (the commanded targets lead the arm, so
  reversed they would point forward), the expert's waits dropped, until within RELEASE_TOL of the pose where
  the hand closed; then that pose with the gripper open (released). Rollback ends where a pre-contact state
  of the same episode begins, so the next samples there are advance samples.
- advance  (the instruction changed while not in contact): the other episode's actions from its pre-contact
  tick at or above Z_CLEAR whose TCP is nearest the current TCP (the new task's approach, joined where it
  passes closest); below Z_CLEAR on the way down to the old object (or at it, just put back), first this
  episode's own approach reversed, hand open, up to Z_CLEAR; or an observation of the new task's own approach
  paired with the old instruction as previous (its own actions).

The mode is never drawn: a sample is a switch sample with probability `switch_prob`, and the rule
(`mode_of`) then names it from the contact state at the observation. The paper's own recipe is not public;
this one is ours (docs/design.md, "SwitchVLA").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORWARD, ROLLBACK, ADVANCE = 0, 1, 2
RELEASE_TOL = 0.005        # m: rollback targets this close to where the hand closed release the object there
Z_CLEAR = 0.09             # m: an advance joins the new approach at or above this TCP height (blocks are 4 cm tall;
                           # the expert hovers at 0.10 before it descends), never sweeping across the table to it
MIN_STEP = 0.002           # m: reversed targets closer than this to the last one are dropped (the expert's waits:
                           # replayed backwards, a policy that replans at a wait would be sent to where it is)
MODES = ("forward", "rollback", "advance")


def mode_of(previous: str, current: str, in_contact: bool) -> int:
    """The behaviour mode by the paper's rule: continue, undo what is held, or go straight to the new task."""
    if previous == current:
        return FORWARD
    return ROLLBACK if in_contact else ADVANCE


@dataclass
class Demo:
    """One ordinary demonstration, rows at the policy rate (row t: observation at tick t, action commanded there)."""

    instruction: str
    layout: str                      # episodes of one scene (same objects and poses at the start) share it
    ee_pose: np.ndarray              # (T, 7) TCP pose at each tick
    action_pose: np.ndarray          # (T, 7)
    action_gripper: np.ndarray       # (T,)  0 open .. 1 closed
    contact: np.ndarray              # (T,) bool: in contact at tick t (the state the observation shows)

    def __post_init__(self):
        n = len(self.ee_pose)
        self.action_gripper = np.asarray(self.action_gripper, dtype=np.float64).reshape(-1)
        self.contact = np.asarray(self.contact, dtype=bool).reshape(-1)
        if not (len(self.action_pose) == len(self.action_gripper) == len(self.contact) == n):
            raise ValueError("a demo's streams must have one row per tick")
        touched = np.flatnonzero(self.contact)
        self.first_contact = int(touched[0]) if len(touched) else n
        closing = np.flatnonzero(self.action_gripper[: self.first_contact] <= 0.5)
        self.grasp_start = int(closing[-1]) + 1 if len(closing) else 0   # the tick the hand was commanded closed

    def passed(self, ticks) -> np.ndarray:
        """Targets through where the TCP was at `ticks`: its measured positions, the commanded orientations (the
        measured ones lag by what the controller leaves: up to 30 standard deviations of the targets' rotations)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        return np.concatenate((self.ee_pose[ticks, :3], self.action_pose[ticks, 3:]), axis=1)


def contact_at_ticks(phases: list[str], n_ticks: int) -> np.ndarray:
    """Per tick, whether the state is in contact: phases[k] is the state after row k's action, i.e. at tick k+1."""
    out = np.zeros(n_ticks, bool)
    flags = np.array([p == "in_contact" for p in phases], bool)[: n_ticks - 1]
    out[1: 1 + len(flags)] = flags
    return out


@dataclass
class SwitchSample:
    mode: int
    previous: str
    current: str
    contact_prev: bool               # the contact state one tick before the observation (the policy's input)
    contact: bool                    # at the observation (the contact head's target)
    source: int                      # the demo the targets come from
    ticks: np.ndarray                # (Ta,) rows of `source` whose action poses are the targets
    gripper: np.ndarray              # (Ta,) gripper targets
    is_pad: np.ndarray               # (Ta,) steps past the source's end
    poses: np.ndarray | None = None  # (Ta, 7) the TCP targets: `source`'s action poses at `ticks` unless set (rollback:
                                     # the poses the TCP passed through; the commanded targets led the arm forward)


class SwitchSampleBuilder:
    """Deterministic in (demos, settings, rng): the same generator state gives the same samples."""

    def __init__(self, demos: list[Demo], horizon: int, switch_prob: float = 0.5):
        if not 0.0 <= switch_prob <= 1.0:
            raise ValueError(f"switch_prob must be in [0, 1], got {switch_prob}")
        self.demos, self.horizon, self.switch_prob = demos, horizon, switch_prob
        self.siblings: list[list[int]] = []
        by_layout: dict[str, list[int]] = {}
        for i, d in enumerate(demos):
            by_layout.setdefault(d.layout, []).append(i)
        for i, d in enumerate(demos):
            self.siblings.append([j for j in by_layout[d.layout] if demos[j].instruction != d.instruction])

    # --- one sample -------------------------------------------------------------------------
    def draw(self, episode: int, t: int, rng: np.random.Generator) -> SwitchSample:
        demo = self.demos[episode]
        contact = bool(demo.contact[t])
        contact_prev = bool(demo.contact[t - 1]) if t > 0 else False
        siblings = self.siblings[episode]
        if not siblings or rng.random() >= self.switch_prob:
            return self.forward(episode, t, contact_prev, contact)
        other = siblings[int(rng.integers(len(siblings)))]
        if contact:
            return self.rollback(episode, t, other, contact_prev)
        if t < demo.grasp_start and rng.random() < 0.5:
            # the new task's own approach, with the old instruction as the previous one
            s = self.forward(episode, t, contact_prev, contact)
            s.previous, s.mode = self.demos[other].instruction, ADVANCE
            return s
        return self.advance(episode, t, other, contact_prev)

    def forward(self, episode: int, t: int, contact_prev: bool, contact: bool) -> SwitchSample:
        demo = self.demos[episode]
        ticks, pad = self._chunk(len(demo.ee_pose), t)
        return SwitchSample(FORWARD, demo.instruction, demo.instruction, contact_prev, contact, episode, ticks,
                            demo.action_gripper[ticks].copy(), pad)

    def rollback(self, episode: int, t: int, other: int, contact_prev: bool) -> SwitchSample:
        """Back along the episode's own actions since the hand closed, then open the hand where it closed."""
        demo = self.demos[episode]
        g0 = demo.grasp_start
        back, here, grasp = [], demo.ee_pose[t, :3], demo.ee_pose[g0, :3]
        for k in range(t - 1, g0 - 1, -1):                                  # t-1, t-2, ..., g0
            pose = demo.ee_pose[k, :3]
            if np.linalg.norm(pose - grasp) <= RELEASE_TOL:
                break               # the hand closed in place here: this is where it opens, not more path back
            if np.linalg.norm(pose - here) > MIN_STEP:                      # where the expert held still, no wait
                back.append(k)
                here = pose
            if len(back) == self.horizon:
                break
        back = np.array(back, dtype=np.int64)
        ticks = np.concatenate((back, np.full(self.horizon - len(back), g0)))
        gripper = np.where(np.arange(self.horizon) < len(back), 1.0, 0.0)   # held while carried back, then open
        return SwitchSample(ROLLBACK, demo.instruction, self.demos[other].instruction, contact_prev, True, episode,
                            ticks.astype(np.int64), gripper, np.zeros(self.horizon, bool), demo.passed(ticks))

    def advance(self, episode: int, t: int, other: int, contact_prev: bool) -> SwitchSample:
        """The other task's approach from its tick nearest this TCP, above Z_CLEAR; below it (at the object just
        put back, or on the way down to it), first back up along this episode's own approach, hand open."""
        demo, new = self.demos[episode], self.demos[other]
        poses, grip, here = [], [], demo.ee_pose[t].copy()
        if here[2] < Z_CLEAR and t <= demo.grasp_start:
            for k in range(t - 1, -1, -1):                                  # the way down, reversed
                if np.linalg.norm(demo.ee_pose[k, :3] - here[:3]) > MIN_STEP:
                    here = demo.passed([k])[0]
                    poses.append(here)
                    grip.append(0.0)
                if here[2] >= Z_CLEAR or len(poses) == self.horizon:
                    break
        approach = np.arange(max(1, new.grasp_start))                        # ticks before its hand closes
        high = approach[new.ee_pose[approach, 2] >= Z_CLEAR]
        joinable = high if len(high) else approach
        s = int(joinable[np.argmin(np.linalg.norm(new.ee_pose[joinable, :3] - here[:3], axis=1))])
        ticks, pad = self._chunk(len(new.ee_pose), s)
        rest = self.horizon - len(poses)
        poses = np.array(poses + list(new.action_pose[ticks[:rest]])).reshape(self.horizon, 7)
        grip = np.concatenate((grip, new.action_gripper[ticks[:rest]]))
        pad = np.concatenate((np.zeros(self.horizon - rest, bool), pad[:rest]))
        ticks = np.concatenate((np.full(self.horizon - rest, t), ticks[:rest]))
        return SwitchSample(ADVANCE, demo.instruction, new.instruction, contact_prev, False, other, ticks, grip, pad,
                            poses)

    def _chunk(self, n: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        raw = np.arange(t, t + self.horizon)
        return np.minimum(raw, n - 1), raw > n - 1

    # --- many ---------------------------------------------------------------------------------
    def targets(self, sample: SwitchSample) -> tuple[np.ndarray, np.ndarray]:
        """The canonical targets (Ta, 7) poses and (Ta,) gripper of a sample."""
        if sample.poses is not None:
            return sample.poses, sample.gripper
        return self.demos[sample.source].action_pose[sample.ticks], sample.gripper
