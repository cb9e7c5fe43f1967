"""Errors a policy raises on bad input: each names what was wrong and what was expected."""


class PolicyError(ValueError):
    """Base class: the request is refused, nothing is acted on, the caller keeps serving."""


class UnknownPolicy(PolicyError):
    pass


class MissingConditioning(PolicyError):
    pass


class BadObservation(PolicyError):
    pass


class CheckpointMismatch(PolicyError):
    pass
