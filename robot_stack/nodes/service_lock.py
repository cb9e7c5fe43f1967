"""A lock on the services that move an arm or release its e-stop (arm/recover, arm/home, arm/enable true).

Without DDS security (the PyPI rmw_fastrtps has none: docs/design.md, "DDS security"), anyone who can reach the
graph can call any service; std_srvs/Trigger carries no payload to put a credential in, and a caller's node name
proves nothing (any process can take any name). So the credential travels in a parameter set instead:

- `protected_services: true` (read-only: a caller cannot switch it off) turns the lock on; the token comes from the
  environment (ROBOT_STACK_SERVICE_TOKEN) or a file (`service_token_file`, keep it mode 0600), never from a
  parameter value, as every parameter can be read by anyone on the graph.
- A caller unlocks by setting the parameter `unlock` to the token (`unlock()` below, or
  `ros2 param set /arm_node unlock <token>`). The token is compared in constant time and never stored: the pre-set
  callback replaces the value with "" before rclpy stores it, so `get_parameters` shows nothing; a wrong token is
  refused with a reason.
- An unlock admits one protected call within UNLOCK_WINDOW seconds; the call consumes it.

What it does not do: the token crosses the graph in clear (shared memory and loopback UDP), so a process that can
read /dev/shm or capture loopback traffic (the same user, or root) can learn it. It keeps other users' tools,
scripts and careless `ros2 service call`s from releasing an e-stop; it is no substitute for DDS security.
arm/stop and arm/enable false (both stop the arm) are never locked.
"""
from __future__ import annotations

import hmac
import os
import threading
import time
from pathlib import Path

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.parameter import Parameter

TOKEN_ENV = "ROBOT_STACK_SERVICE_TOKEN"
UNLOCK_WINDOW = 10.0        # s an unlock waits for the call it admits


def read_token(path: str = "") -> str:
    """The service token: ROBOT_STACK_SERVICE_TOKEN, else the first line of `path`; '' when neither is given."""
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ValueError(f"service_token_file {path}: {exc.strerror or exc}") from None
    return ""


class ServiceLock:
    def __init__(self, node):
        self.node = node
        self.protected = bool(node.declare_parameter(
            "protected_services", False,
            ParameterDescriptor(read_only=True, description="arm/recover, arm/home, arm/enable need an unlock")).value)
        token_file = node.declare_parameter("service_token_file", "", ParameterDescriptor(read_only=True)).value
        node.declare_parameter("unlock", "", ParameterDescriptor(
            description="set to the service token to admit one protected call; never stored"))
        self._token = read_token(str(token_file or "")) if self.protected else ""
        if self.protected and not self._token:
            raise ValueError(f"protected_services needs a token: set {TOKEN_ENV} or service_token_file")
        self._lock = threading.Lock()
        self._unlocked_until = 0.0
        self._attempt_ok: bool | None = None         # the last unlock's verdict, from pre-set to on-set
        node.add_pre_set_parameters_callback(self._pre_set)
        node.add_on_set_parameters_callback(self._on_set)

    def _pre_set(self, params: list[Parameter]) -> list[Parameter]:
        out = []
        for p in params:
            if p.name == "unlock":
                offered = str(p.value) if p.value is not None else ""
                ok = self.protected and bool(offered) and hmac.compare_digest(offered.encode(), self._token.encode())
                with self._lock:
                    self._attempt_ok = ok
                    if ok:
                        self._unlocked_until = time.monotonic() + UNLOCK_WINDOW
                p = Parameter("unlock", Parameter.Type.STRING, "")       # the token is never stored
            out.append(p)
        return out

    def _on_set(self, params: list[Parameter]) -> SetParametersResult:
        if not any(p.name == "unlock" for p in params):
            return SetParametersResult(successful=True)
        with self._lock:
            ok, self._attempt_ok = self._attempt_ok, None
        if not self.protected:
            return SetParametersResult(successful=True, reason="services are not protected")
        if not ok:
            self.node.get_logger().warning("service unlock refused: wrong token")
            return SetParametersResult(successful=False, reason="wrong service token")
        return SetParametersResult(successful=True, reason=f"one protected call within {UNLOCK_WINDOW:.0f} s")

    def allow(self, service: str, response) -> bool:
        """Whether a call of `service` may go ahead (consuming the unlock); if not, `response` says why."""
        if not self.protected:
            return True
        with self._lock:
            if time.monotonic() < self._unlocked_until:
                self._unlocked_until = 0.0
                return True
        self.node.get_logger().warning(f"{service} refused: services are locked")
        response.success = False
        response.message = (f"{service} is locked (protected_services): set parameter 'unlock' of "
                            f"{self.node.get_fully_qualified_name()} to the service token first")
        return False


def unlock(node, target: str, token: str, timeout: float = 10.0) -> tuple[bool, str]:
    """Set `unlock` on node `target` (a fully qualified name, e.g. /arm_node) from `node`; (success, reason).
    Call from a thread other than the one spinning `node`."""
    from rcl_interfaces.srv import SetParameters
    from robot_stack.ros.service_call import call_service
    client = node.create_client(SetParameters, f"{target.rstrip('/')}/set_parameters")
    try:
        offered = Parameter("unlock", Parameter.Type.STRING, token).to_parameter_msg()
        request = SetParameters.Request(parameters=[offered])
        result = call_service(client, request, timeout=timeout).results[0]
        return result.successful, result.reason
    finally:
        node.destroy_client(client)
