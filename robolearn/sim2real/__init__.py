"""Sim-to-real alignment (ASAP, issue 22): recordings on a target, delta-action models, baselines.

robolearn.sim2real.recordings joins a deploy log with its target's truth log into the delta-action
dataset; the stages that train and use delta-action models build on it.
"""
