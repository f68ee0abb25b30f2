"""`python -m robolearn.deploy robot=go2 policy=<artifact> backend=<mujoco|dds> [key=value ...]`

    python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=mujoco duration_s=10 autostart=true autopolicy_s=1
    python -m robolearn.deploy.sim_bridge robot=go2 &           # a MuJoCo Go2 on DDS (loopback)
    python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=dds
    python -m robolearn.deploy robot=go2 policy=<artifact> backend=dds interface=enp3s0 domain_id=0   # the robot

See docs/deploy.md for the states, guards and options, and deploy/ for the operator procedures.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import robolearn.resources
from robolearn.cli import precheck
from robolearn.deploy.config import validate_deploy_config
from robolearn.errors import report_user_errors


@hydra.main(version_base="1.3", config_path=str(robolearn.resources.configs_dir()), config_name="deploy")
@report_user_errors
def _hydra_entry(cfg: DictConfig) -> None:
    from robolearn.deploy.app import run_deploy

    run_deploy(cfg)


@report_user_errors
def _precheck(argv: list[str]) -> None:
    precheck("deploy", argv, validate_deploy_config)


def main() -> None:
    """Console entry point (robolearn-deploy)."""
    _precheck(sys.argv[1:])
    _hydra_entry()


if __name__ == "__main__":
    main()
