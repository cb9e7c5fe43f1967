"""The registry of conditioning kinds: one module per kind in this folder, or an entry point in group
`robot_stack.conditioning` from another package (its value a module that registers the kind)."""
from __future__ import annotations

import importlib
import pkgutil

from robot_stack.plugins import load_entry_points

from robot_stack.policies.conditioning.base import (ConditioningError, ConditioningKind, EpisodeContext,  # noqa: F401
                                                    InputLimits, Sample, TaskTopic)

ENTRY_POINT_GROUP = "robot_stack.conditioning"
NONE = "none"                          # no conditioning: a goal-free policy (not a module: nothing to declare)
_KINDS: dict[str, ConditioningKind] = {}
_discovered = False


def register_kind(cls: type[ConditioningKind]) -> type[ConditioningKind]:
    if cls.name == NONE:
        raise ValueError(f"{NONE!r} is reserved for no conditioning")
    if cls.name in _KINDS and type(_KINDS[cls.name]) is not cls:
        raise ValueError(f"conditioning kind {cls.name!r} registered twice")
    _KINDS[cls.name] = cls()
    _check_fields()
    return cls


def _check_fields() -> None:
    seen: dict[str, tuple[str, str]] = {}
    for kind in _KINDS.values():
        for name, what in kind.fields.items():
            if name in seen and seen[name][1] != what:
                raise ValueError(f"Task field {name!r} is {seen[name][1]!r} in kind {seen[name][0]!r} and {what!r} "
                                 f"in kind {kind.name!r}")
            seen[name] = (kind.name, what)


def discover() -> None:
    """Import every kind module of this folder, then the kinds other packages declare as entry points."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")
    load_entry_points(ENTRY_POINT_GROUP, "conditioning")


def kinds() -> dict[str, ConditioningKind]:
    discover()
    return dict(_KINDS)


def get_kind(name: str) -> ConditioningKind:
    found = kinds()
    if name not in found:
        raise ValueError(f"unknown conditioning kind {name!r}; registered: {', '.join(sorted(found))}, {NONE}")
    return found[name]


def names() -> list[str]:
    """Every registered kind, and `none`."""
    return [*sorted(kinds()), NONE]


def task_fields() -> dict[str, str]:
    """Every Task field a registered kind declares -> what it holds."""
    return {f: what for kind in kinds().values() for f, what in kind.fields.items()}


def image_fields() -> list[str]:
    return sorted(f for f, what in task_fields().items() if what == "image")
