"""Deploy backends: in-process MuJoCo (sim2sim) and DDS (a Unitree robot or the sim bridge)."""

from robolearn.deploy.backends.base import Backend, BackendStats, StateSample

__all__ = ["Backend", "BackendStats", "StateSample"]
