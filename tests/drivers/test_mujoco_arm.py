"""The twin arm driver: the TCP wrench it reports from contacts."""
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
