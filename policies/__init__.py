"""Policies behind one interface (base.Policy); importing this package registers every method."""
from robot_stack.policies.base import REGISTRY, DataSpec, Policy, load_policy, policy_class, register  # noqa: F401
from robot_stack.policies.errors import (BadObservation, CheckpointMismatch, MissingConditioning,  # noqa: F401
                                         PolicyError, UnknownPolicy)

from robot_stack.policies import beso, grif  # noqa: E402,F401  (registers the methods)
