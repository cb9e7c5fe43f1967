"""Policies behind one interface (base.Policy).

A method is one folder here (`<method>/config.py`, `model.py`, `policy.py` with `@register` on the Policy
subclass), found by `discover()`; a method in another pip package declares an entry point in group
`robot_stack.policies` whose value is the module that registers it.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil

from robot_stack.plugins import load_entry_points

from robot_stack.policies.base import (REGISTRY, DataSpec, Policy, PolicyConfig, load_policy,  # noqa: F401
                                       policy_class, register)
from robot_stack.policies.errors import (BadObservation, CheckpointMismatch, MissingConditioning,  # noqa: F401
                                         PolicyError, UnknownPolicy)

ENTRY_POINT_GROUP = "robot_stack.policies"
_discovered = False


def discover() -> dict[str, type[Policy]]:
    """Import every method folder (a subpackage with a policy.py) and every `robot_stack.policies` entry point."""
    global _discovered
    if not _discovered:
        _discovered = True
        for info in pkgutil.iter_modules(__path__):
            if info.ispkg and importlib.util.find_spec(f"{__name__}.{info.name}.policy") is not None:
                importlib.import_module(f"{__name__}.{info.name}.policy")
        load_entry_points(ENTRY_POINT_GROUP, "policy")
    return dict(REGISTRY)
