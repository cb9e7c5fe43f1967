"""Contact phases of an episode: before, during and after the gripper's contact with the object it manipulates.

SwitchVLA decides how to switch tasks by whether the arm is in contact with an object when the instruction
changes (roll back, or go straight on), and its training samples are cut from demonstrations along these
phases. The twin labels them from physics contacts (`TwinEnv`: gripper geoms touching the task's object). A
real arm has no such label, so `rule_phases` gives the same phases from what every arm reports: the gripper
command, the measured gripper width and, where the arm has one, the TCP wrench. The paper labels contact with
a VLM on wrist images refined by the gripper state; we use no VLM (nothing is downloaded at run time, and the
gripper rule agrees with the twin's contacts on >= 95% of expert steps, tests/test_contact_phases.py).

The rule: the gripper holds something when it is commanded closed and its fingers have stopped (the width
changed by less than `stall` since the last step) short of closing fully (`empty_width`) and away from
open (`open_width - margin`). A TCP force above `force` while the fingers are commanded closed also counts
(a push with a closed hand: no grasp to see in the width). Phases then follow the twin's rule: pre_contact
until the first contact, in_contact while it lasts, post_contact once it ended (in_contact again if it
comes back).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PHASES = ("pre_contact", "in_contact", "post_contact")


@dataclass(frozen=True)
class ContactRule:
    """Thresholds of the gripper rule; the defaults fit the Panda hand (0.08 m open) and the twin's 4 cm blocks."""

    open_width: float = 0.08         # m, the gripper's open width
    margin: float = 0.01             # m, fingers at least this far in from open count as closed on something
    empty_width: float = 0.005       # m, at or below this the fingers closed on nothing
    stall: float = 0.006             # m per policy step: the fingers stopped moving
    command_closed: float = 0.5      # gripper commands above this close the hand
    force: float = 15.0              # N, a TCP force above this with a closed hand is a contact (None: unused)


def contact_steps(widths, commands, wrench=None, rule: ContactRule = ContactRule()) -> np.ndarray:
    """Per step k, whether the gripper is in contact: `widths[k]` measured after `commands[k]` was applied."""
    widths = np.asarray(widths, dtype=float).reshape(-1)
    commands = np.asarray(commands, dtype=float).reshape(-1)
    if widths.shape != commands.shape:
        raise ValueError(f"widths {widths.shape} and commands {commands.shape} must have one entry per step")
    closed = commands > rule.command_closed
    previous = np.concatenate(([rule.open_width], widths[:-1]))
    stalled = np.abs(widths - previous) < rule.stall
    holding = closed & stalled & (widths > rule.empty_width) & (widths < rule.open_width - rule.margin)
    if wrench is not None and rule.force is not None:
        force = np.linalg.norm(np.asarray(wrench, dtype=float).reshape(len(widths), -1)[:, :3], axis=1)
        holding |= closed & (force > rule.force)
    return holding


def phases_from_contacts(contacts) -> list[str]:
    """Contact flags per step -> phase names, by the twin's rule (TwinEnv._update_phase)."""
    phase, out = PHASES[0], []
    for touching in contacts:
        if touching:
            phase = "in_contact"
        elif phase == "in_contact":
            phase = "post_contact"
        out.append(phase)
    return out


def rule_phases(widths, commands, wrench=None, rule: ContactRule = ContactRule()) -> list[str]:
    """The contact phases of a real-arm episode from its gripper widths, commands and (optional) wrenches."""
    return phases_from_contacts(contact_steps(widths, commands, wrench, rule))


def episode_phases(meta: dict, widths, commands, rule: ContactRule = ContactRule()) -> list[str]:
    """Phases of a recorded episode, one per row (row t: the state once row t's command was applied): the twin's
    labels from the episode metadata where it has them, else the gripper rule on the recorded gripper widths
    (row t) and commands (row t) -- a recording from a real arm."""
    labels = meta.get("contact_phase")
    widths = np.asarray(widths, dtype=float).reshape(-1)
    if labels:
        labels = list(labels)
        return (labels + [labels[-1]] * len(widths))[:len(widths)]     # the final row holds the settled state
    after = np.concatenate((widths[1:], widths[-1:]))                 # the width measured after each row's command
    return rule_phases(after, commands, None, rule)


def agreement(a, b) -> float:
    """Fraction of steps on which two phase sequences agree."""
    if len(a) != len(b):
        raise ValueError(f"phase sequences differ in length: {len(a)} vs {len(b)}")
    return float(np.mean([x == y for x, y in zip(a, b)])) if len(a) else 1.0
