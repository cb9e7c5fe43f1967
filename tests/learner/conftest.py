from tests.nodes.conftest import ros  # noqa: F401  (real rclpy, an isolated context per test)
