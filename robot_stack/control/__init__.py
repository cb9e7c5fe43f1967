"""Control pieces shared by the twin and the real-arm drivers."""
