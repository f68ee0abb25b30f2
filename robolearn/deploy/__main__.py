"""`python -m robolearn.deploy robot=go2 policy=<artifact> backend=<mujoco|dds> [key=value ...]`

    python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=mujoco   # sim2sim, 10 s
    python -m robolearn.deploy.sim_bridge robot=go2 &           # a MuJoCo Go2 on DDS (loopback)
    python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=dds
    python -m robolearn.deploy robot=go2 policy=<artifact> backend=dds interface=enp3s0 domain_id=0   # the robot

See docs/deploy.md for the states, guards and options, and deploy/ for the operator procedures.
"""

from __future__ import annotations

import sys
from typing import Any

from omegaconf import DictConfig

from robolearn.cli import hydra_verb, verb_help
from robolearn.deploy.config import validate_deploy_config
from robolearn.errors import require_extra


def validate_deploy_command(cfg: DictConfig) -> None:
    """The config's one-line checks, then the [deploy] extra's modules this session needs, before
    anything starts: onnxruntime for a policy, the DDS stack for backend=dds."""
    validate_deploy_config(cfg)
    if cfg.policy is not None:
        require_extra("running a policy artifact", "onnxruntime")
    if cfg.backend == "dds":
        require_extra("backend=dds", "cyclonedds", "unitree_sdk2py")


def _deploy(cfg: DictConfig) -> Any:
    # Exit codes (docs/deploy.md): 0 clean, 2 could not start, 3 safety fault, 4 operator stop.
    try:
        from robolearn.deploy.app import exit_code, run_deploy

        return exit_code(run_deploy(cfg))
    except KeyboardInterrupt:
        # Ctrl-C while loading (the session's own handlers take over once it runs): nothing was sent.
        print("error: stopped by Ctrl-C before the session started; no command was sent", file=sys.stderr)
        return 4


HELP = verb_help(
    "deploy",
    "robot=<go2|g1|g1_29dof> policy=<artifact> backend=<mujoco|dds> [key=value ...]",
    "Run an exported policy artifact (contract.json + policy.onnx, from robolearn.export) on a robot:\n"
    "in-process MuJoCo (backend=mujoco, sim2sim) or over DDS (backend=dds: the sim bridge or a Unitree\n"
    "robot), through the safety layer's states PASSIVE -> RAMP -> HOLD -> POLICY -> DAMP. Exit codes: 0 clean,\n"
    "2 refused before start, 3 safety fault, 4 operator stop (Ctrl-C, ESTOP). See docs/deploy.md.",
    [
        ("robot", "go2 | g1 | g1_29dof (default: go2); settings from configs/deploy/<robot>.yaml"),
        ("policy", "artifact folder; null stands only, never enters POLICY"),
        ("backend", "mujoco | dds (default: mujoco)"),
        ("dry_run", "dds: read the robot and compute commands, publish nothing (default: false)"),
        ("interface", "network interface (shortcut for settings.dds.interface)"),
        ("domain_id", "DDS domain id (shortcut for settings.dds.domain_id)"),
        ("autostart", "PASSIVE -> RAMP on the first valid state (null: on for backend=mujoco, off for dds)"),
        ("autopolicy_s", "HOLD -> POLICY after this many seconds (null: 1.0 for mujoco, off for dds)"),
        (
            "duration_s",
            "stop (through DAMP) after this long (null: 10 s for mujoco unless mujoco.realtime; none for dds)",
        ),
        ("exit_damp_s", "on stop, send DAMP this long before exiting (default: 1.0)"),
        ("keyboard", "auto | true | false: operator keys on the terminal"),
        ("status_every_s", "status line period; 0 prints transitions only (default: 5.0)"),
        ("loop.*", "command_hz, policy_hz, scheduler, spin_s, rt_priority, policy_thread"),
        ("record.dir", "write a deploy log into this folder"),
        ("mujoco.*", "backend=mujoco: physics_hz, realtime, push_interval_s, push_velocity, seed"),
        ("settings.*", "per-robot settings: dds, remote bindings, safety thresholds, ramp_s"),
    ],
    [
        "python -m robolearn.deploy robot=go2 policy=policies/reference/go2_stand backend=mujoco   # stands, runs the policy, 10 s",
        "python -m robolearn.deploy robot=go2 policy=<artifact> backend=dds interface=enp3s0 domain_id=0",
    ],
)

main = hydra_verb("deploy", _deploy, validate_deploy_command, help_text=HELP)
main.__doc__ = "Console entry point (robolearn-deploy)."

if __name__ == "__main__":
    main()
