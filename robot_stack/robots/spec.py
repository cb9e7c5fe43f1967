"""Robot descriptions from the manufacturers' published parameters.

Each arm is described once here: DH table, joint limits, link masses and centres of mass,
gripper geometry. The twin's MJCF files (`sim/assets/`) are generated from these specs
(`python -m robot_stack.sim.assets.generate`); `kinematics.py` computes the same arm's
forward kinematics and Jacobian from them without a simulator.

Sources: Franka Emika "Robot and interface specifications" (modified/Craig DH, joint
limits, flange 0.107 m, hand TCP 0.1034 m rotated -45 deg), link masses/COMs from the
identified Panda dynamics (Gaz et al., RA-L 2019); Universal Robots "DH parameters for
calculations of kinematics and dynamics" (UR5e, standard DH, masses, COMs) and the UR5e
technical specifications (joint speed 180 deg/s, torques 150/150/150/28/28/28 Nm).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PI = np.pi


@dataclass(frozen=True)
class GripperSpec:
    """A parallel-jaw gripper: two fingers sliding symmetrically along the hand's y axis."""

    max_opening: float          # per finger (m); total stroke is twice this
    force: float                # maximum squeeze force (N)
    base_height: float          # flange to finger base along the tool z axis (m)
    finger_length: float        # along tool z (m)
    tcp_offset: float           # flange to TCP along tool z (m)
    yaw: float                  # rotation of the hand about the flange z axis (rad)
    base_half_size: tuple[float, float, float]
    mass: float
    finger_mass: float


@dataclass(frozen=True)
class RobotSpec:
    name: str
    convention: str                     # "modified" (Craig) or "standard" DH
    a: tuple[float, ...]
    d: tuple[float, ...]
    alpha: tuple[float, ...]
    flange_d: float                     # extra z offset from the last DH frame to the flange
    q_min: tuple[float, ...]
    q_max: tuple[float, ...]
    dq_max: tuple[float, ...]
    tau_max: tuple[float, ...]
    masses: tuple[float, ...]
    coms: tuple[tuple[float, float, float], ...]   # in the link's DH frame
    link_radius: tuple[float, ...]
    gripper: GripperSpec
    control_hz: int                     # inner control loop (= physics rate)
    q_home: tuple[float, ...]
    armature: tuple[float, ...] = field(default=())
    max_ee_speed: float = 0.5           # m/s, set-point speed limit
    max_ee_angular_speed: float = 2.0   # rad/s

    @property
    def dof(self) -> int:
        return len(self.a)

    @property
    def timestep(self) -> float:
        return 1.0 / self.control_hz


PANDA = RobotSpec(
    name="panda",
    convention="modified",
    a=(0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088),
    d=(0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0),
    alpha=(0.0, -PI / 2, PI / 2, PI / 2, -PI / 2, PI / 2, PI / 2),
    flange_d=0.107,
    q_min=(-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973),
    q_max=(2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973),
    dq_max=(2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61),
    tau_max=(87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0),
    masses=(4.970684, 0.646926, 3.228604, 3.587895, 1.225946, 1.666555, 0.735522),
    coms=(
        (0.003875, 0.002081, -0.04762),
        (-0.003141, -0.02872, 0.003495),
        (0.027518, 0.039252, -0.066502),
        (-0.05317, 0.104419, 0.027454),
        (-0.011953, 0.041065, -0.038437),
        (0.060149, -0.014117, -0.010517),
        (0.010517, -0.004252, 0.061597),
    ),
    link_radius=(0.06, 0.06, 0.06, 0.055, 0.055, 0.05, 0.045),
    gripper=GripperSpec(
        max_opening=0.04, force=70.0, base_height=0.0584, finger_length=0.054,
        tcp_offset=0.1034, yaw=-PI / 4, base_half_size=(0.03, 0.1, 0.029),
        mass=0.73, finger_mass=0.015,
    ),
    control_hz=1000,
    q_home=(0.0, -PI / 4, 0.0, -3 * PI / 4, 0.0, PI / 2, PI / 4),
    armature=(0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05),
)

UR5E = RobotSpec(
    name="ur5e",
    convention="standard",
    a=(0.0, -0.425, -0.3922, 0.0, 0.0, 0.0),
    d=(0.1625, 0.0, 0.0, 0.1333, 0.0997, 0.0996),
    alpha=(PI / 2, 0.0, 0.0, PI / 2, -PI / 2, 0.0),
    flange_d=0.0,
    q_min=(-2 * PI, -2 * PI, -PI, -2 * PI, -2 * PI, -2 * PI),
    q_max=(2 * PI, 2 * PI, PI, 2 * PI, 2 * PI, 2 * PI),
    dq_max=(PI, PI, PI, PI, PI, PI),
    tau_max=(150.0, 150.0, 150.0, 28.0, 28.0, 28.0),
    masses=(3.761, 8.058, 2.846, 1.37, 1.3, 0.365),
    coms=(
        (0.0, -0.02561, 0.00193),
        (0.2125, 0.0, 0.11336),
        (0.15, 0.0, 0.0265),
        (0.0, -0.0018, 0.01634),
        (0.0, 0.0018, 0.01634),
        (0.0, 0.0, -0.001159),
    ),
    link_radius=(0.06, 0.055, 0.045, 0.04, 0.04, 0.035),
    gripper=GripperSpec(
        max_opening=0.0425, force=100.0, base_height=0.09, finger_length=0.065,
        tcp_offset=0.145, yaw=0.0, base_half_size=(0.035, 0.075, 0.045),
        mass=0.925, finger_mass=0.03,
    ),
    control_hz=500,
    q_home=(PI, -PI / 2, PI / 2, -PI / 2, -PI / 2, 0.0),
    armature=(0.2, 0.2, 0.1, 0.05, 0.05, 0.05),
)

ROBOTS: dict[str, RobotSpec] = {spec.name: spec for spec in (PANDA, UR5E)}


def get_robot(name: str) -> RobotSpec:
    try:
        return ROBOTS[name]
    except KeyError:
        raise ValueError(f"unknown robot {name!r}; valid robots: {', '.join(sorted(ROBOTS))}") from None
