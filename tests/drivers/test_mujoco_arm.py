"""The twin arm driver: the TCP wrench it reports from contacts, and its stamps."""
import mujoco
import numpy as np

from robot_stack.drivers.mujoco import MujocoArmConfig, MujocoArmDriver


def reference_wrench(scene) -> np.ndarray:
    """Contact by contact, as the physics defines it: the force on the hand and its moment about the TCP."""
    d, wrench = scene.data, np.zeros(6)
    for i in range(d.ncon):
        con = d.contact[i]
        if con.geom1 not in scene.gripper_geoms and con.geom2 not in scene.gripper_geoms:
            continue
        f = np.zeros(6)
        mujoco.mj_contactForce(scene.model, d, i, f)
        force = con.frame.reshape(3, 3).T @ f[:3] * (-1.0 if con.geom1 in scene.gripper_geoms else 1.0)
        wrench[:3] += force
        wrench[3:] += np.cross(con.pos - d.site_xpos[scene.tcp_site], force)
    return wrench


def test_tcp_wrench_is_the_sum_of_hand_contact_forces_and_pushes_up_when_pressing_down():
    driver = MujocoArmDriver(MujocoArmConfig(realtime=False, task="pick_place", seed=3))
    driver.connect()
    state = driver.read_state()
    assert np.allclose(state.wrench, 0.0)                     # free space: no contact
    pos, quat = state.ee_pos.copy(), state.ee_quat.copy()
    pressed = []
    for _ in range(2500):                                     # lower the open hand into the table
        pos[2] = max(pos[2] - 0.0004, -0.05)
        driver.command_pose(pos, quat, 0.0)
        state = driver.read_state()
        hand = [i for i in range(driver.scene.data.ncon)
                if {driver.scene.data.contact[i].geom1, driver.scene.data.contact[i].geom2} & driver.scene.gripper_geoms]
        if hand:
            np.testing.assert_allclose(state.wrench, reference_wrench(driver.scene), rtol=1e-9, atol=1e-9)
            pressed.append(state.wrench[2])
    assert len(pressed) > 100                                 # the hand met the table and stayed on it
    assert np.median(pressed[-100:]) > 1.0                    # the table pushes the hand up (N)


def test_states_are_stamped_on_physics_time_like_a_real_arm_however_the_ticks_ran():
    """A late tick and the hurried ones after it are still 1 ms of physics apart: stamped with the host clock, they
    read as a TCP several times faster than it moved (and the speed governor braked the live arm)."""
    host = iter(np.cumsum([0.0, 0.001, 0.006, 0.0001, 0.0001, 0.0001, 0.001] * 40) + 100.0)
    driver = MujocoArmDriver(MujocoArmConfig(realtime=False, task="pick_place", seed=3), clock=lambda: next(host))
    driver.connect()
    state = driver.read_state()
    pos, quat, stamps = state.ee_pos.copy(), state.ee_quat.copy(), [state.stamp]
    for _ in range(200):
        pos[0] += 0.0002
        driver.command_pose(pos, quat, 0.0)
        stamps.append(driver.read_state().stamp)
    np.testing.assert_allclose(np.diff(stamps), 0.001, atol=2e-5)      # the physics step, not the host's jitter
    assert 100.0 - 1e-9 <= stamps[0] and stamps[-1] <= 100.0 + 0.0093 * 40   # on the host clock, never ahead of it
