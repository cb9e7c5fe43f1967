"""Robot specifications (spec.py) and kinematics (kinematics.py): plain numpy, no simulator.

Both the MuJoCo twin (sim/, which generates its MJCF from these specs) and the real-arm
drivers read the arms from here, so a driver never has to import the simulator.
"""
