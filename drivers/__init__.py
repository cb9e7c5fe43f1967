"""Arm, camera and teleop device drivers (installed as robot_stack.drivers)."""
