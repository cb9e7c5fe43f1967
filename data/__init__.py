"""Episode store, datasets and replay (installed as robot_stack.data)."""
