"""`python -m robolearn.deploy robot=go2 policy=<artifact> backend=<mujoco|dds> [key=value ...]`

    python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=mujoco duration_s=10 autostart=true autopolicy_s=1
    python -m robolearn.deploy.sim_bridge robot=go2 &           # a MuJoCo Go2 on DDS (loopback)
    python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=dds
    python -m robolearn.deploy robot=go2 policy=<artifact> backend=dds interface=enp3s0 domain_id=0   # the robot

See docs/deploy.md for the states, guards and options, and deploy/ for the operator procedures.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from robolearn.cli import hydra_verb
from robolearn.deploy.config import validate_deploy_config


def _deploy(cfg: DictConfig) -> Any:
    from robolearn.deploy.app import exit_code, run_deploy

    # Exit codes (docs/deploy.md): 0 clean, 2 could not start, 3 safety fault, 4 operator stop.
    return exit_code(run_deploy(cfg))


main = hydra_verb("deploy", _deploy, validate_deploy_config)
main.__doc__ = "Console entry point (robolearn-deploy)."

if __name__ == "__main__":
    main()
