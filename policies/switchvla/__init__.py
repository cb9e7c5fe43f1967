"""SwitchVLA (Li et al. 2025): execution-aware task switching from the previous and current instruction and the
contact state, trained on forward / rollback / advance samples cut from ordinary demonstrations."""
