"""arm_node's service lock (nodes/service_lock.py; issue 35, item 10) through real rclpy: with protected_services,
arm/recover, arm/home and arm/enable true refuse until a caller sets `unlock` to the token; the token is never
stored, a wrong one is refused, an unlock admits one call; stopping is never locked."""
import pytest
from rcl_interfaces.msg import ParameterType
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.parameter import Parameter
from std_srvs.srv import SetBool, Trigger

from robot_stack.nodes.arm_node import ArmNode
from robot_stack.nodes.service_lock import TOKEN_ENV, unlock
from robot_stack.ros.service_call import call_service
from tests.nodes.conftest import wait_for

TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def start(ros, **params):
    overrides = [Parameter(k, value=v) for k, v in {"robot": "panda", "task": "reach", "seed": 0, **params}.items()]
    node = ros.add(ArmNode(context=ros.context, parameter_overrides=overrides))
    caller = ros.node("caller")
    wait_for(lambda: node.state is not None, what="the arm's first state")
    return node, caller


def call(caller, name, srv=Trigger, request=None):
    return call_service(caller.create_client(srv, name), request, timeout=10.0)


def test_protected_services_need_an_unlock_each(ros, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    node, caller = start(ros, protected_services=True)
    assert call(caller, "arm/stop").success                      # stopping is never locked
    refused = call(caller, "arm/recover")
    assert not refused.success and "locked" in refused.message
    assert node._estop                                          # still latched: the refusal changed nothing

    ok, reason = unlock(caller, "/arm_node", "not-the-token")
    assert not ok and "wrong" in reason
    assert not call(caller, "arm/recover").success              # a wrong token unlocks nothing

    ok, reason = unlock(caller, "/arm_node", TOKEN)
    assert ok, reason
    stored = call(caller, "/arm_node/get_parameters", GetParameters, GetParameters.Request(names=["unlock"]))
    assert stored.values[0].type == ParameterType.PARAMETER_STRING and stored.values[0].string_value == ""
    assert call(caller, "arm/recover").success                  # the unlock admits one call ...
    assert not node._estop
    assert not call(caller, "arm/home").success                 # ... and only one

    assert call(caller, "arm/enable", SetBool, SetBool.Request(data=False)).success   # disabling holds: unlocked
    assert not call(caller, "arm/enable", SetBool, SetBool.Request(data=True)).success
    assert unlock(caller, "/arm_node", TOKEN)[0]
    assert call(caller, "arm/enable", SetBool, SetBool.Request(data=True)).success

    # The protection cannot be switched off from the graph.
    result = call(caller, "/arm_node/set_parameters", SetParameters, SetParameters.Request(
        parameters=[Parameter("protected_services", value=False).to_parameter_msg()])).results[0]
    assert not result.successful
    assert node._service_lock.protected


def test_unprotected_by_default(ros):
    node, caller = start(ros)
    assert call(caller, "arm/stop").success
    assert call(caller, "arm/recover").success
    assert not node._estop


def test_protection_without_a_token_is_a_configuration_error(ros, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    with pytest.raises(ValueError, match="needs a token"):
        ArmNode(context=ros.context, parameter_overrides=[
            Parameter("robot", value="panda"), Parameter("task", value="reach"),
            Parameter("protected_services", value=True)], start_loop=False)
