"""A module a malicious checkpoint names; importing it must never happen (test_interface checks sys.modules)."""
raise RuntimeError("a checkpoint imported code")
