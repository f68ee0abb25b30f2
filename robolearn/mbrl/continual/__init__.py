"""Continual model-based RL: task sequences' loop, learners (HyperCRL and baselines) and metrics."""
