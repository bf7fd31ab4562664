"""Periodic jobs: one mechanism for every beat entry (policy, lock, tick, run history, metrics)."""
