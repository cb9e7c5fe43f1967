"""A toy waypoint-conditioned policy: a method in one folder of another package."""
