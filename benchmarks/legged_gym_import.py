"""Import a unitree_rl_gym policy and check the artifact against the original in closed loop.

    python benchmarks/legged_gym_import.py --policy <unitree_rl_gym>/deploy/pre_train/g1/motion.pt \
        --real-config <unitree_rl_gym>/deploy/deploy_real/configs/g1.yaml \
        --mujoco-config <unitree_rl_gym>/deploy/deploy_mujoco/configs/g1.yaml [--seconds 10] [--out outputs/benchmarks]

For each yaml (deploy_real -> robot g1_29dof, deploy_mujoco -> robot g1):

1. import: `import_legged_gym` + `write_imported_artifact` (the command `python -m robolearn.export
   from=legged_gym ...` runs), its step-by-step equivalence errors on random observations and wall time;
2. closed loop in robolearn's MuJoCo robot (robolearn.deploy.simulation.RobotSimulation, physics at
   0.002 s as deploy_mujoco.py, PD in the actuators with the artifact's gains): every 0.02 s the ORIGINAL
   TorchScript policy gets the observation built the way deploy_real.py builds it (written out here with
   numpy from the yaml: joints picked by motor slot, gravity from the quaternion, counter-based gait phase)
   and drives the robot; beside it, the artifact gets the same robot state through deploy's own
   ObservationPipeline (policy joints, scales, gait clock with the same phase) and OnnxPolicy (recurrent
   state carried). Reported: the largest action difference along the trajectory (what the importer's
   translation of joint order, scales and observation layout is worth on states the policy itself
   visits), whether the robot is still up at the end (base height > 0.4 m, the velocity task's fall rule) and when it
   first fell below that, its mean forward speed.

Fixed seed, no noise: the same numbers every run on one machine. Writes legged_gym_import.md and
legged_gym_import.json under --out and prints the table; the artifacts go to --artifacts (default: a
scratch folder, since they hold copies of the unitree_rl_gym files). The unitree_rl_gym files are not in this
repository (BSD-3; github.com/unitreerobotics/unitree_rl_gym): pass their paths.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.deploy.simulation import RobotSimulation
from robolearn.isaac.artifact import write_imported_artifact
from robolearn.isaac.legged_gym import import_legged_gym, read_deploy_yaml
from robolearn.robots.state import RobotState
from robolearn.utils.io import atomic_write_text

PHYSICS_DT = 0.002  # deploy_mujoco/configs/g1.yaml simulation_dt
PERIOD_S = 0.8  # deploy_real.py / deploy_mujoco.py gait period
# robolearn's velocity task's G1 fall rule (robolearn/envs/tasks/velocity.py, min_base_height).
FALLEN_HEIGHT_M = 0.4


def _gravity(quat: np.ndarray) -> np.ndarray:
    """(0, 0, -1) in the body frame, from the rotation matrix of a w-x-y-z quaternion."""
    w, x, y, z = quat / np.linalg.norm(quat)
    third_row = np.array([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])
    return -third_row


def closed_loop(
    artifact_root: Path, policy: Path, yaml_path: Path, seconds: float, command: np.ndarray
) -> dict[str, Any]:
    """Drive robolearn's MuJoCo robot with the original policy; run the artifact beside it on the same states."""
    from robolearn.deploy.artifact import load_artifact

    contract = load_artifact(artifact_root).contract
    spec = contract.robot
    cfg = read_deploy_yaml(yaml_path)
    idx = contract.policy_index  # robot index of each network joint
    default = np.asarray(cfg["default_angles"], dtype=np.float64)
    cmd_scale = np.asarray(cfg["cmd_scale"], dtype=np.float64)
    scripted = torch.jit.load(str(policy))
    if hasattr(scripted, "reset_memory"):
        scripted.reset_memory()
    pipeline = ObservationPipeline(contract)
    onnx = OnnxPolicy(artifact_root / str(contract.network["file"]), contract)

    sim = RobotSimulation(spec, physics_dt=PHYSICS_DT, seed=0)
    sim.reset("default")
    kp, kd = spec.kp_array, spec.kd_array
    target = spec.default_pos_array.copy()
    action = np.zeros(len(idx))
    decimation = round(spec.control_dt / PHYSICS_DT)
    steps = round(seconds / spec.control_dt)
    max_diff = 0.0
    fell_at: float | None = None
    start_x = sim.read().base_pos[0]
    for counter in range(1, steps + 1):
        sim.set_command(target, kp, kd)
        sim.step(decimation)
        r = sim.read()
        if fell_at is None and r.base_pos[2] < FALLEN_HEIGHT_M:
            fell_at = counter * spec.control_dt
        phase = (counter * spec.control_dt) % PERIOD_S / PERIOD_S
        # deploy_real.py's observation, written out from the yaml.
        obs = np.concatenate(
            [
                r.gyro * float(cfg["ang_vel_scale"]),
                _gravity(r.quat),
                command * cmd_scale,
                (r.joint_pos[idx] - default) * float(cfg["dof_pos_scale"]),
                r.joint_vel[idx] * float(cfg["dof_vel_scale"]),
                action,
                [np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase)],
            ]
        ).astype(np.float32)
        with torch.no_grad():
            new_action = scripted(torch.as_tensor(obs).unsqueeze(0)).numpy().reshape(-1).astype(np.float64)
        last = np.zeros(spec.num_joints)
        last[idx] = action
        state = RobotState(
            joint_pos=r.joint_pos,
            joint_vel=r.joint_vel,
            base_quat=r.quat,
            gyro=r.gyro,
            command=command,
            last_action=last,
            gait_phase=np.array([phase]),
        )
        _, x = pipeline(state)
        max_diff = max(max_diff, float(np.max(np.abs(onnx(x) - new_action))))
        action = new_action
        target = spec.default_pos_array.copy()
        target[idx] = default + float(cfg["action_scale"]) * action
    end = sim.read()
    return {
        "closed_loop_s": seconds,
        "max_action_diff": max_diff,
        "standing_at_end": bool(end.base_pos[2] > FALLEN_HEIGHT_M),
        "fell_at_s": fell_at,
        "base_height_end_m": float(end.base_pos[2]),
        "mean_vx": float((end.base_pos[0] - start_x) / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--real-config", type=Path, required=True)
    parser.add_argument("--mujoco-config", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--command", type=float, nargs=3, default=[0.5, 0.0, 0.0])
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    # The artifacts hold copies of the unitree_rl_gym files: a scratch folder unless asked for.
    parser.add_argument("--artifacts", type=Path, default=None)
    args = parser.parse_args()
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="legged_gym_import."))
    torch.set_num_threads(1)
    rows = []
    for yaml_path, robot in ((args.real_config, "g1_29dof"), (args.mujoco_config, "g1")):
        t0 = time.perf_counter()
        imported = import_legged_gym(args.policy, yaml_path, robot)
        artifact = write_imported_artifact(imported, artifacts / robot, check_steps=256, seed=0)
        wall = time.perf_counter() - t0
        errors = artifact.contract.network["check"]["max_abs_error"]
        loop = closed_loop(artifact.root, args.policy, yaml_path, args.seconds, np.asarray(args.command))
        rows.append(
            {
                "robot": robot,
                "yaml": f"{yaml_path.parent.parent.name}/{yaml_path.name}",
                "import_s": wall,
                **{f"check_{k}": v for k, v in errors.items()},
                **loop,
            }
        )
    lines = [
        "| robot | yaml | import (s) | check vs TorchScript | check vs eager | closed-loop max action diff | standing at end | fell at (s) | mean vx (m/s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['robot']} | {row['yaml']} | {row['import_s']:.1f} | {row['check_reference']:.2g} | {row['check_torch']:.2g}"
            f" | {row['max_action_diff']:.2g} | {row['standing_at_end']} | {'-' if row['fell_at_s'] is None else format(row['fell_at_s'], '.2f')} | {row['mean_vx']:.2f} |"
        )
    table = "\n".join(lines)
    header = (
        f"`python benchmarks/legged_gym_import.py --policy {args.policy.name} --seconds {args.seconds:g}"
        f" --command {' '.join(f'{c:g}' for c in args.command)}` on {platform.node()} ({platform.processor() or platform.machine()},"
        f" {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at the end)\n\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "legged_gym_import.md", header + table + "\n")
    atomic_write_text(args.out / "legged_gym_import.json", json.dumps(rows, indent=2))
    print(table)


if __name__ == "__main__":
    main()
