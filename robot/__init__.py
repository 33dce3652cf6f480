"""The Franka Panda side: backends, the simulated SafeReach world, the gymnasium env(s)."""
