"""A scripted "operator": replays the twin's scripted expert for a task as teleop commands.

It sees what the expert commander sees: the simulator state the arm node publishes
(`sim/state`), handed in through `observe()` (the teleop node subscribes for it). The
state is mirrored into a private scene, the task's expert runs there at its own rate
(`expert_hz`, 10 Hz like the expert commander), and every read returns the expert's
latest absolute TCP target and gripper command, with the intervention flag held. The
episode events follow the expert: "start" with the first command, then "success" when
the task's predicate holds on the mirrored scene or "fail" after the task's step budget.
The episode's seed must be the arm node's (`sim/reset` answers `seed=N`); the task's
parameters (which block, which target) follow from it, as in the expert commander.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from robot_stack.drivers.teleop.base import DriverError, TeleopCommand, TeleopDevice
from robot_stack.sim.scene import Scene
from robot_stack.sim.tasks import make_task


@dataclass
class ScriptedConfig:
    task: str = "reach"
    robot: str = "panda"
    seed: int = 0                   # the arm node's episode seed
    expert_hz: float = 10.0         # the expert's step rate (its waypoint timeouts count these steps)
    intervention: bool = True       # the flag sent with every command
    events: bool = True             # send start, then success or fail
    max_steps: int | None = None    # expert steps before "fail"; None: the task's budget


class ScriptedDevice(TeleopDevice):
    name = "scripted"
    wants_sim_state = True          # the teleop node feeds `observe()` from sim/state

    def __init__(self, config: ScriptedConfig | None = None, clock=time.monotonic):
        self.config = config or ScriptedConfig()
        self.clock = clock
        self.task = make_task(self.config.task)         # a bad task name fails here, before anything starts
        self.scene: Scene | None = None
        self._state: np.ndarray | None = None
        self._not_before = -np.inf                      # sim/state stamps older than this predate the episode
        self._lock = threading.Lock()                   # the state, handed in from a ROS callback
        self._episode_lock = threading.Lock()           # read() and restart() may run on different threads
        self.expert = None
        self.instruction = ""                           # this episode's instruction, as the expert commander words it
        self.steps = 0
        self.done = False
        self.success = False
        self._action: np.ndarray | None = None
        self._next_act = 0.0
        self._started = False
        self._outcome_sent = False

    # --- state in --------------------------------------------------------------------
    def observe(self, sim_state) -> None:
        """The arm node's latest sim/state message data: [stamp, time, qpos..., mocap positions...]."""
        state = np.asarray(sim_state, dtype=float)
        with self._lock:
            if state.size and state[0] >= self._not_before:
                self._state = state

    def _mirror(self) -> bool:
        with self._lock:
            state = self._state
        if state is None:
            return False
        try:
            self.scene.load_state_message(state)
        except ValueError as exc:
            raise DriverError(f"scripted teleop: {exc}") from exc
        return True

    # --- device --------------------------------------------------------------------------
    def connect(self) -> None:
        self.scene = Scene(self.config.robot)
        self.restart(self.config.seed)

    def disconnect(self) -> None:
        self.scene = None
        self.expert = None

    def restart(self, seed: int, not_before: float = -np.inf) -> None:
        """Begin a new episode with the arm node's seed (after its sim/reset answered).

        The expert starts on the first state stamped at or after `not_before` (the time the
        reset answered), so a state from before the reset never seeds it.
        """
        with self._episode_lock:
            self.config.seed = int(seed)
            self.task.reset(Scene(self.config.robot), np.random.default_rng(seed))   # same seed, same parameters
            self.instruction = self.task.instruction(np.random.default_rng(seed))
            with self._lock:
                self._state, self._not_before = None, not_before
            self.expert, self.steps, self.done, self.success = None, 0, False, False
            self._action, self._started, self._outcome_sent = None, False, False

    def read(self) -> TeleopCommand:
        with self._episode_lock:
            return self._read()

    def _read(self) -> TeleopCommand:
        if self.scene is None:
            raise DriverError("scripted teleop: not connected")
        if not self._mirror():
            return TeleopCommand(intervention=False)    # nothing to replay yet
        cfg = self.config
        events: list[str] = []
        now = self.clock()
        if self.expert is None:
            self.expert = self.task.expert(self.scene, np.random.default_rng(cfg.seed + 1), 1.0 / cfg.expert_hz)
            self._next_act = now
        if not self.done:
            if self.steps and self.task.success(self.scene):
                self.done, self.success = True, True
            elif self.steps >= (cfg.max_steps or self.task.max_steps):
                self.done = True
        if not self.done and now >= self._next_act:
            self._action = np.asarray(self.expert.act(self.scene), dtype=float)
            self.steps += 1
            self._next_act += 1.0 / cfg.expert_hz
            if self._next_act < now:                    # late: do not run steps back to back
                self._next_act = now + 1.0 / cfg.expert_hz
        if cfg.events and not self._started:
            self._started = True
            events.append("start")
        if cfg.events and self.done and not self._outcome_sent:
            self._outcome_sent = True
            events.append("success" if self.success else "fail")
        action = self._action
        return TeleopCommand(target=(action[:3], action[3:7]), gripper=float(np.clip(action[7], 0.0, 1.0)),
                             events=tuple(events), intervention=cfg.intervention)
