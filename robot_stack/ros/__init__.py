"""ROS 2 glue: message conversion, QoS profiles, clock helpers. Only this package and nodes/ import rclpy."""
