"""The SERL-style online learner: RLPD/SAC agent, replay buffers, transport, actor and learner roles."""
