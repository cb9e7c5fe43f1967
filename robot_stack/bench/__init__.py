"""Benchmarks behind `robot-stack bench ...`: they print measured figures, they assert nothing."""
