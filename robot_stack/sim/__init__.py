"""The MuJoCo twin: Panda and UR5e models, the scene, tasks, scripted experts, gymnasium envs."""


def make_env(*args, **kwargs):
    """See robot_stack.sim.env.make_env (imported lazily to keep `import robot_stack.sim` cheap)."""
    from robot_stack.sim.env import make_env as _make_env
    return _make_env(*args, **kwargs)
