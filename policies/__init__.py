"""Learned policies behind one interface (installed as robot_stack.policies)."""
