"""Write the arm MJCF files (panda.xml, ur5e.xml) from the specs in robot_stack/robots/spec.py.

Run `python -m robot_stack.sim.assets.generate` after changing a spec; a test checks the
committed files match. Kinematics come straight from the DH tables; geometry is simple
capsules; masses and centres of mass are the published ones, inertias are those of a
solid cylinder of the link's size (the makers publish no simpler consistent set).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from robot_stack.robots.spec import ROBOTS, RobotSpec

ASSETS = Path(__file__).resolve().parent
# Finger speed at full force (m/s); the makers quote 0.05-0.15 m/s. Realised as viscous
# joint damping, which MuJoCo integrates implicitly, so the stiff grip servo stays stable.
FINGER_SPEED = 0.1


def _f(v) -> str:
    return " ".join(f"{x:.10g}" if abs(x) > 1e-12 else "0" for x in np.atleast_1d(v))


def _quat_x(alpha: float) -> np.ndarray:
    return np.array([np.cos(alpha / 2), np.sin(alpha / 2), 0.0, 0.0])


def _rx(alpha: float) -> np.ndarray:
    c, s = np.cos(alpha), np.sin(alpha)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _child_offsets(spec: RobotSpec) -> list[tuple[np.ndarray, float]]:
    """(position, x-rotation) of each body's child in that body's frame; last is the flange."""
    out = []
    n = spec.dof
    if spec.convention == "modified":
        for i in range(1, n):
            a, d, al = spec.a[i], spec.d[i], spec.alpha[i]
            out.append((np.array([a, -np.sin(al) * d, np.cos(al) * d]), al))
        out.append((np.array([0.0, 0.0, spec.flange_d]), 0.0))
    else:
        for i in range(n):
            a, d, al = spec.a[i], spec.d[i], spec.alpha[i]
            pos = np.array([a, 0.0, d])
            if i == n - 1:
                pos = pos + _rx(al) @ np.array([0.0, 0.0, spec.flange_d])
            out.append((pos, al))
    return out


def _com_in_body(spec: RobotSpec, i: int) -> np.ndarray:
    c = np.array(spec.coms[i])
    if spec.convention == "modified":
        return c
    return np.array([spec.a[i], 0.0, spec.d[i]]) + _rx(spec.alpha[i]) @ c


def _inertia(mass: float, radius: float, length: float) -> np.ndarray:
    length = max(length, 2 * radius)
    ixx = mass * (3 * radius**2 + length**2) / 12
    return np.array([ixx, ixx, mass * radius**2 / 2])


def _gripper_xml(spec: RobotSpec, indent: str) -> str:
    g = spec.gripper
    bx, by, bz = g.base_half_size
    fz = g.base_height + g.finger_length / 2
    fh = (0.009, 0.006, g.finger_length / 2)   # finger half sizes: width, thickness, length
    cam_x = bx + 0.03
    return f"""{indent}<body name="hand" quat="{_f([np.cos(g.yaw / 2), 0, 0, np.sin(g.yaw / 2)])}">
{indent}  <inertial pos="0 0 {_f(g.base_height / 2)}" mass="{_f(g.mass)}" diaginertia="{_f(_inertia(g.mass, by, 2 * bz))}"/>
{indent}  <geom name="hand_base" class="robot" type="box" size="{_f([bx, by, g.base_height / 2])}" pos="0 0 {_f(g.base_height / 2)}" rgba="0.9 0.9 0.9 1"/>
{indent}  <site name="tcp" pos="0 0 {_f(g.tcp_offset)}" size="0.005" rgba="1 0 1 0.5" group="4"/>
{indent}  <camera name="wrist" pos="{_f([cam_x, 0, g.base_height * 0.5])}" xyaxes="0 -1 0 -0.966 0 -0.259" fovy="75"/>
{indent}  <body name="finger_left" pos="0 0 {_f(fz)}">
{indent}    <inertial pos="0 {_f(fh[1])} 0" mass="{_f(g.finger_mass)}" diaginertia="1e-5 1e-5 1e-5"/>
{indent}    <joint name="finger_left" type="slide" axis="0 1 0" range="0 {_f(g.max_opening)}" class="finger"/>
{indent}    <geom name="finger_left" class="finger" type="box" size="{_f(fh)}" pos="0 {_f(fh[1])} 0"/>
{indent}  </body>
{indent}  <body name="finger_right" pos="0 0 {_f(fz)}">
{indent}    <inertial pos="0 {_f(-fh[1])} 0" mass="{_f(g.finger_mass)}" diaginertia="1e-5 1e-5 1e-5"/>
{indent}    <joint name="finger_right" type="slide" axis="0 -1 0" range="0 {_f(g.max_opening)}" class="finger"/>
{indent}    <geom name="finger_right" class="finger" type="box" size="{_f(fh)}" pos="0 {_f(-fh[1])} 0"/>
{indent}  </body>
{indent}</body>
"""


def robot_mjcf(spec: RobotSpec) -> str:
    offsets = _child_offsets(spec)
    body_xml = []
    indent = "      "
    for i in range(spec.dof):
        if i == 0:
            pos, quat = np.zeros(3), np.array([1.0, 0, 0, 0])
            if spec.convention == "modified":
                pos = np.array([spec.a[0], -np.sin(spec.alpha[0]) * spec.d[0], np.cos(spec.alpha[0]) * spec.d[0]])
                quat = _quat_x(spec.alpha[0])
        else:
            pos, al = offsets[i - 1]
            quat = _quat_x(al)
        child_pos = offsets[i][0]
        r = spec.link_radius[i]
        length = float(np.linalg.norm(child_pos))
        lines = [
            f'{indent}<body name="link{i + 1}" pos="{_f(pos)}" quat="{_f(quat)}">',
            f'{indent}  <inertial pos="{_f(_com_in_body(spec, i))}" mass="{_f(spec.masses[i])}" '
            f'diaginertia="{_f(_inertia(spec.masses[i], r, length))}"/>',
            f'{indent}  <joint name="joint{i + 1}" range="{_f([spec.q_min[i], spec.q_max[i]])}" '
            f'armature="{_f(spec.armature[i])}"/>',
            f'{indent}  <geom class="robot" type="cylinder" size="{_f([r, r])}" rgba="0.95 0.95 0.95 1"/>',
        ]
        if length > 0.02:
            lines.append(f'{indent}  <geom class="robot" type="capsule" size="{_f(r * 0.8)}" '
                         f'fromto="0 0 0 {_f(child_pos)}"/>')
        body_xml.append("\n".join(lines))
        indent += "  "
    flange_pos, flange_al = offsets[-1]
    flange = (f'{indent}<body name="flange" pos="{_f(flange_pos)}" quat="{_f(_quat_x(flange_al))}">\n'
              + _gripper_xml(spec, indent + "  ") + f"{indent}</body>\n")
    closing = "".join(f'{"      " + "  " * i}</body>\n' for i in reversed(range(spec.dof)))
    actuators = "\n".join(
        f'    <motor name="act{i + 1}" joint="joint{i + 1}" ctrlrange="{_f([-t, t])}"/>'
        for i, t in enumerate(spec.tau_max))
    g = spec.gripper
    kp = 4 * g.force / g.max_opening    # the full squeeze force is reached at half the stroke
    return f"""<!-- Generated by robot_stack.sim.assets.generate from robot_stack/robots/spec.py; do not edit. -->
<mujoco model="{spec.name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{_f(spec.timestep)}" integrator="implicitfast" cone="elliptic" impratio="10">
    <flag autoreset="disable"/>
  </option>
  <default>
    <default class="robot">
      <geom contype="2" conaffinity="0" group="2" rgba="0.85 0.85 0.88 1"/>
      <joint damping="0.5"/>
    </default>
    <default class="finger">
      <geom contype="2" conaffinity="0" group="2" friction="1.5 0.02 0.001" condim="4"
            solref="0.004 1" solimp="0.95 0.99 0.001" priority="1" rgba="0.25 0.25 0.25 1"/>
      <joint damping="{_f(g.force / FINGER_SPEED)}" armature="0.01"/>
    </default>
  </default>
  <worldbody>
    <body name="base" childclass="robot">
      <geom class="robot" type="cylinder" size="0.07 0.02" pos="0 0 0.02" rgba="0.3 0.3 0.3 1"/>
{chr(10).join(body_xml)}
{flange}{closing}    </body>
  </worldbody>
  <contact>
    <!-- The first link turns inside the base casing, which sits on the table. -->
    <exclude body1="world" body2="link1"/>
  </contact>
  <tendon>
    <fixed name="grip">
      <joint joint="finger_left" coef="0.5"/>
      <joint joint="finger_right" coef="0.5"/>
    </fixed>
  </tendon>
  <equality>
    <joint joint1="finger_left" joint2="finger_right" polycoef="0 1 0 0 0" solref="0.005 1"/>
  </equality>
  <actuator>
{actuators}
    <position name="gripper" tendon="grip" ctrlrange="0 {_f(g.max_opening)}" kp="{_f(kp)}"
              forcerange="{_f([-2 * g.force, 2 * g.force])}"/>
  </actuator>
</mujoco>
"""


def main() -> None:
    for spec in ROBOTS.values():
        path = ASSETS / f"{spec.name}.xml"
        path.write_text(robot_mjcf(spec))
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
