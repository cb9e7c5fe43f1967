"""call_service: the one blocking service call, with a resend for replies lost to the DDS start-up race."""
import threading
import time

import pytest
from std_srvs.srv import Trigger

from robot_stack.ros.service_call import ServiceError, call_service


def _slow_first_server(node, first_delay):
    """A Trigger service that keeps its first request for `first_delay` s (as good as a lost reply) and
    answers each request with its number."""
    calls = []

    def answer(request, response):
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(first_delay)
        response.success, response.message = True, f"call {len(calls)}"
        return response

    from rclpy.callback_groups import ReentrantCallbackGroup
    node.create_service(Trigger, "twin/reset", answer, callback_group=ReentrantCallbackGroup())
    return calls


class SendTimes:
    """A client that notes when each request leaves: the resend's timing is the caller's, where the server's
    receipt times would add each request's own transport delay."""

    def __init__(self, client):
        self.client, self.sent = client, []
        self.srv_name = client.srv_name

    def service_is_ready(self):
        return self.client.service_is_ready()

    def call_async(self, request):
        self.sent.append(time.monotonic())
        return self.client.call_async(request)


def test_resend_takes_the_latest_answer(ros):
    calls = _slow_first_server(ros.node("server"), first_delay=3.0)
    client = SendTimes(ros.node("client").create_client(Trigger, "twin/reset"))
    response = call_service(client, timeout=10.0, resend_after=0.5)
    assert response.success and response.message == "call 2"          # not the first request's late answer
    assert len(calls) == 2 and len(client.sent) == 2 and client.sent[1] - client.sent[0] >= 0.5


def test_without_resend_a_silent_service_times_out_with_its_name(ros):
    _slow_first_server(ros.node("server"), first_delay=3.0)
    client = ros.node("client").create_client(Trigger, "twin/reset")
    with pytest.raises(ServiceError, match="twin/reset did not answer within 0.5 s"):
        call_service(client, timeout=5.0, answer_timeout=0.5)


def test_an_absent_service_and_a_caller_that_stops_waiting(ros):
    client = ros.node("client").create_client(Trigger, "nobody/home")
    with pytest.raises(ServiceError, match=r"no /?nobody/home service within 0.3 s \(start the arm node\)"):
        call_service(client, timeout=0.3, hint="start the arm node")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(ServiceError):
        call_service(client, timeout=30.0, keep_waiting=lambda: not stop.is_set())
    assert time.monotonic() - started < 5.0                             # ended by keep_waiting, not the timeout


def test_child_graph_resends_only_idempotent_calls(ros):
    from robot_stack.child_graph import call
    from robot_stack.ros.service_call import RESEND_AFTER
    calls = _slow_first_server(ros.node("server"), first_delay=RESEND_AFTER + 2.0)
    client = ros.node("client").create_client(Trigger, "twin/reset")
    assert call(client, timeout=RESEND_AFTER + 1.5, idempotent=True).message == "call 2"
    calls.clear()                                     # the next request is again a slow first one
    with pytest.raises(ServiceError):                 # and without a resend it times out
        call(client, timeout=RESEND_AFTER + 1.0)
