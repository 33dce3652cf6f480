"""FOSP stack: robot (arm + sim), perception, policy, data collection."""
