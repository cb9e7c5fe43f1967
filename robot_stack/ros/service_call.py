"""One blocking service call, made from a thread other than the one spinning the client's node.

Why a resend: at start-up a DDS server can take a request before it has discovered the client's reply
reader, and then drops the reply (rmw_fastrtps waits only briefly for it). `wait_for_service` cannot see
this: it only knows the request side is matched. A call that must not hang on that race may resend after
`resend_after` seconds without an answer, but only where a repeat is harmless (a switch set to a value: the later
answer describes the state the server is in). The answer taken is always the latest request's.

A twin reset is not harmless to repeat: each one starts the next seed. Its resend waits past the arm node's own
bound on answering (5 s for the control loop to take the reset), so a slow answer under load is waited for and
only a lost reply is resent; a caller that knows the seed it expects checks the answer.
"""
from __future__ import annotations

import time
from typing import Callable


RESEND_AFTER = 3.0     # s: a switch answers within a tick or two; silence this long means a lost reply
RESET_RESEND_AFTER = 7.0     # s: sim/reset answers within 5 s, success or not; silence past that is a lost reply


class ServiceError(RuntimeError):
    """The service was absent, did not answer in time, or the caller stopped waiting."""


def call_service(client, request=None, *, timeout: float = 30.0, answer_timeout: float | None = None,
                 resend_after: float | None = None, keep_waiting: Callable[[], bool] = lambda: True, hint: str = ""):
    """Send `request` (std_srvs/Trigger's by default) and return the response. `timeout` bounds the wait for the
    service, `answer_timeout` (default: `timeout`) the wait for its answer. Both waits run in short slices, so
    `keep_waiting() -> False` ends them at once (a closing node)."""
    if request is None:
        from std_srvs.srv import Trigger
        request = Trigger.Request()
    name = client.srv_name
    suffix = f" ({hint})" if hint else ""
    deadline = time.monotonic() + timeout
    while not client.service_is_ready():
        if time.monotonic() > deadline or not keep_waiting():
            raise ServiceError(f"no {name} service within {timeout:g} s{suffix}")
        time.sleep(0.02)
    answer_timeout = timeout if answer_timeout is None else answer_timeout
    future, sent = client.call_async(request), time.monotonic()
    deadline = sent + answer_timeout
    while not future.done():
        now = time.monotonic()
        if now > deadline or not keep_waiting():
            future.cancel()
            raise ServiceError(f"{name} did not answer within {answer_timeout:g} s{suffix}")
        if resend_after is not None and now - sent > resend_after:
            future.cancel()
            future, sent = client.call_async(request), now
        time.sleep(0.005)
    response = future.result()
    if response is None:
        raise ServiceError(f"{name} failed{suffix}")
    return response
