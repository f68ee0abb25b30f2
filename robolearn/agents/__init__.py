"""Agents: stable-baselines3 algorithms built from an `agent` config node."""

from robolearn.agents.factory import ALGORITHMS, algorithm_class, build_agent

__all__ = ["ALGORITHMS", "algorithm_class", "build_agent"]
