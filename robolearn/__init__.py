"""robolearn: robot learning and sim-to-real, from MuJoCo training to a Unitree robot."""

__version__ = "0.1.0"
