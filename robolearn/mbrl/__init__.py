"""Model-based RL: learned dynamics (ensembles), sampling planners (CEM, MPPI), torch reward functions.

The core that HyperCRL (robolearn.mbrl.continual) and later model-based methods build on; see docs/mbrl.md.
Submodules are imported lazily by their users, so `import robolearn.mbrl` stays cheap.
"""
