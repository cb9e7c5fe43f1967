"""ROS 2 nodes, one per file; each has a `main()` console entry point."""
