"""ASAP (He et al. 2025): align a policy with a target robot's physics through a delta-action model.

    python -m robolearn.asap stage=<pretrain|collect|train_delta|finetune|evaluate|all> robot=go2 \\
        mismatch=<name> pretrain.run=<velocity run dir> [out=<folder>] [key=value ...]

Each stage writes under `out` (default outputs/asap/<robot>_<mismatch>) and is skipped when its
result is there, so `stage=all` resumes after a kill; the training stages resume their own runs.

- pretrain: export `pretrain.run` (an agent=rsl_ppo velocity run whose actor the robot can run: no
  base velocity in its observation) to pretrain/artifact and run it in the nominal simulator
  (robolearn.deploy.sim2sim); a policy that falls in more than pretrain.max_fall_rate of its episodes
  is refused, with the measured rate.
- collect: the sim bridge plays the target (`mismatch`, logging its truth) and the exported policy
  drives it over loopback DDS through robolearn.deploy, recording, while the bridge's virtual remote
  steps through collect.schedule; the two logs join into the delta-action dataset
  (robolearn.sim2real.recordings; fields in docs/asap.md).
- train_delta: `robolearn.train env=<Robot>DeltaAction-v0 agent=rsl_ppo` on that dataset
  (robolearn.sim2real.delta_task).
- finetune: the pretrain run's own training config, started from its networks (agent.init_from) with
  the frozen delta on every action (env.kwargs.delta_action; robolearn.sim2real.delta_model), then
  exported: the fine-tuned policy deploys without the delta.
- evaluate: the pretrained and the fine-tuned policy on the target (sim2sim with the mismatch), same
  commands and seeds: velocity and yaw-rate tracking errors, falls.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robolearn.cli import hydra_verb, verb_help
from robolearn.deploy.config import RobotNode
from robolearn.errors import UserError
from robolearn.utils.io import atomic_write_json

STAGES = ("pretrain", "collect", "train_delta", "finetune", "evaluate")
DELTA_ENVS = {"go2": "Go2DeltaAction-v0", "g1": "G1DeltaAction-v0"}


@dataclass
class PretrainSettings:
    run: str | None = None  # an agent=rsl_ppo velocity run directory (its newest checkpoint is used)
    check_s: float = 10.0  # policy time per nominal-simulation episode
    check_episodes: int = 3
    command: list[Any] = field(default_factory=lambda: [0.5, 0.0, 0.0])  # vx, vy, yaw rate
    max_fall_rate: float = 0.0  # refuse a policy that falls in more of its nominal episodes


@dataclass
class CollectSettings:
    seconds: float = 20.0  # deploy duration (POLICY starts after the ramp and autopolicy_s)
    # (start s after POLICY, vx, vy, yaw rate) steps of the bridge's virtual remote
    schedule: list[Any] = field(
        default_factory=lambda: [
            [0.0, 0.5, 0.0, 0.0],
            [5.0, 0.0, 0.0, 0.5],
            [10.0, -0.3, 0.0, 0.0],
            [15.0, 0.0, 0.0, 0.0],
        ]
    )
    rt_priority: int = 0  # SCHED_FIFO for the bridge and deploy (root); 0 = off


@dataclass
class TrainDeltaSettings:
    steps: int = 200_000
    horizon: int = 4
    delta_scale: float = 0.5
    n_envs: int = 256
    overrides: list[str] = field(default_factory=list)  # extra robolearn.train overrides


@dataclass
class FinetuneSettings:
    steps: int = 2_000_000  # env steps of fine-tuning (added to nothing: a new run)
    overrides: list[str] = field(default_factory=list)


@dataclass
class EvaluateSettings:
    seconds: float = 10.0
    episodes: int = 3
    command: list[Any] = field(default_factory=lambda: [0.5, 0.0, 0.0])
    seed: int = 100


@dataclass
class AsapConfig:
    """Schema of configs/asap.yaml."""

    stage: str = "all"
    robot: RobotNode = field(default_factory=RobotNode)  # configs/robot/<name>.yaml, as deploy's
    out: str | None = None  # default outputs/asap/<robot>_<mismatch name>
    seed: int = 0
    mismatch: Any = None  # configs/mismatch/<name>.yaml: {name, description, edits}
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    collect: CollectSettings = field(default_factory=CollectSettings)
    train_delta: TrainDeltaSettings = field(default_factory=TrainDeltaSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)


ConfigStore.instance().store(name="asap_schema", node=AsapConfig)


def validate_asap_config(cfg: DictConfig) -> None:
    """One-line errors before any work: stage, robot, mismatch, the pretrain run."""
    if cfg.stage not in (*STAGES, "all"):
        raise UserError(f"stage={cfg.stage} is not a stage; choose one of: {', '.join(STAGES)}, all")
    if cfg.robot.name not in DELTA_ENVS:
        raise UserError(
            f"robot={cfg.robot.name} has no ASAP pipeline; choose one of: {', '.join(DELTA_ENVS)}"
        )
    from robolearn.deploy.mismatch import target_physics
    from robolearn.robots.registry import get_robot_spec

    target_physics(get_robot_spec(cfg.robot.name), _edits(cfg), cfg.robot.model, name=_mismatch_name(cfg))
    if cfg.stage in ("pretrain", "finetune", "all") and not cfg.pretrain.run:
        raise UserError(
            "pretrain.run is missing: give an agent=rsl_ppo velocity run directory (pretrain.run=<dir>)"
        )
    if cfg.pretrain.run and not (Path(cfg.pretrain.run).expanduser() / "config.yaml").is_file():
        raise UserError(f"pretrain.run={cfg.pretrain.run} is not a run directory (no config.yaml)")
    for key in ("pretrain.command", "evaluate.command"):
        value = OmegaConf.select(cfg, key)
        if len(value) != 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise UserError(
                f"{key}={list(value)} must be three numbers: vx (m/s), vy (m/s), yaw rate (rad/s)"
            )
    for row in cfg.collect.schedule:
        if len(row) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
            raise UserError(
                f"collect.schedule row {list(row)} must be [start s, vx, vy, yaw rate], e.g. [5.0, 0.5, 0.0, 0.0]"
            )
    if not 0.0 <= cfg.pretrain.max_fall_rate <= 1.0:
        raise UserError(f"pretrain.max_fall_rate={cfg.pretrain.max_fall_rate} must be a share in [0, 1]")


def _edits(cfg: DictConfig) -> list[Any]:
    node = cfg.get("mismatch")
    edits = OmegaConf.to_container(node.edits, resolve=True) if node is not None and node.get("edits") else []
    return list(edits or [])


def _mismatch_name(cfg: DictConfig) -> str:
    """The mismatch's file name, or custom-<digest> when inline edits replaced the file's."""
    from robolearn.deploy.mismatch import mismatch_label

    node = cfg.get("mismatch")
    return mismatch_label(str(node.name) if node is not None and node.get("name") else "none", _edits(cfg))


def _hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar ([{kind:motor_kp,joint:'*',scale:0.65}])."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if value is None:
        return "null"
    return json.dumps(value)


def _mismatch_overrides(cfg: DictConfig) -> list[str]:
    """The deploy/bridge overrides that give a subprocess this config's mismatch."""
    return [f"mismatch.name={_mismatch_name(cfg)}", f"mismatch.edits={_hydra_value(_edits(cfg))}"]


def _echo_until_policy(deploy: subprocess.Popen[str], in_policy: threading.Event) -> None:
    """Print the deploy's output and set in_policy at its HOLD -> POLICY transition."""
    assert deploy.stdout is not None
    import re

    transition = re.compile(r"^\[\s*[\d.]+ s\] HOLD -> POLICY")  # not the help line that names it
    for line in deploy.stdout:
        print(line, end="", flush=True)
        if transition.match(line):
            in_policy.set()


def _run(cmd: list[str], what: str) -> None:
    print("$ " + " ".join(cmd[1:]), flush=True)
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise UserError(f"asap {what} failed (exit code {code}); its output is above")


class Pipeline:
    """The stages on one output folder."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        name = _mismatch_name(cfg)
        self.out = Path(cfg.out or f"outputs/asap/{cfg.robot.name}_{name}").expanduser().resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.pretrain_run = Path(cfg.pretrain.run).expanduser().resolve() if cfg.pretrain.run else None
        self._check_manifest()

    def _check_manifest(self) -> None:
        """The settings every stage's output depends on; a folder made for others is refused, so a
        finished stage is never reused for other physics or another policy."""
        mine: dict[str, Any] = {
            "robot": str(self.cfg.robot.name),
            "mismatch": _mismatch_name(self.cfg),
            "edits": _edits(self.cfg),
            "pretrain_run": None if self.pretrain_run is None else str(self.pretrain_run),
            "seed": int(self.cfg.seed),
        }
        path = self.out / "manifest.json"
        if path.is_file():
            theirs = json.loads(path.read_text())
            if mine["pretrain_run"] is None:
                mine["pretrain_run"] = theirs.get("pretrain_run")  # a later stage that does not need it
            for key, value in mine.items():
                if theirs.get(key, value) != value:
                    raise UserError(
                        f"out={self.out} holds an ASAP pipeline for {key}={theirs.get(key)!r}, not"
                        f" {value!r}; choose another out= or delete that folder"
                    )
        atomic_write_json(path, mine)

    # -- paths -----------------------------------------------------------------------------------
    @property
    def artifact(self) -> Path:
        return self.out / "pretrain" / "artifact"

    @property
    def dataset(self) -> Path:
        return self.out / "collect" / "delta" / "data"

    @property
    def delta_run(self) -> Path:
        return self.out / "train_delta"

    @property
    def finetune_run(self) -> Path:
        return self.out / "finetune" / "run"

    @property
    def finetuned_artifact(self) -> Path:
        return self.out / "finetune" / "artifact"

    # -- stages ----------------------------------------------------------------------------------
    def pretrain(self) -> dict[str, Any]:
        from robolearn.deploy.sim2sim import Sim2SimConfig, run_sim2sim
        from robolearn.export import export_run

        check_file = self.out / "pretrain" / "check.json"
        if check_file.is_file():
            return dict(json.loads(check_file.read_text()))
        if self.pretrain_run is None:
            raise UserError("pretrain.run is missing: give an agent=rsl_ppo velocity run directory")
        c = self.cfg.pretrain
        if not (self.artifact / "contract.json").is_file():
            # The newest checkpoint: the one finetune's agent.init_from starts from too.
            export_run(self.pretrain_run, self.artifact, checkpoint="latest", check_samples=64)
        result = run_sim2sim(
            self.artifact,
            Sim2SimConfig(
                command=tuple(float(v) for v in c.command),  # type: ignore[arg-type]
                duration_s=float(c.check_s),
                episodes=int(c.check_episodes),
                seed=int(self.cfg.seed),
                settle_s=min(2.0, float(c.check_s) / 2),
            ),
        )
        summary = result["summary"]
        rate = summary["falls"] / max(1, summary["episodes"])
        report = {"fall_rate": rate, "summary": summary, "run": str(self.pretrain_run)}
        if rate > float(c.max_fall_rate):
            raise UserError(
                f"the pretrained policy falls in nominal simulation in {summary['falls']} of"
                f" {summary['episodes']} episodes (fall rate {rate:.2f} > pretrain.max_fall_rate"
                f" {float(c.max_fall_rate):.2f}); train it longer or pick another run"
            )
        atomic_write_json(check_file, report)
        print(
            f"pretrain: {self.artifact} falls in {summary['falls']} of {summary['episodes']} nominal episodes"
        )
        return report

    def collect(self) -> Path:
        from robolearn.deploy.dds import claim_local_domain
        from robolearn.sim2real.recordings import write_delta_dataset

        if (self.dataset / "metadata.json").is_file():
            return self.dataset
        if not (self.artifact / "contract.json").is_file():
            raise UserError(f"{self.artifact} is missing: run stage=pretrain first")
        folder = self.out / "collect"
        log, truth = folder / "log", folder / "truth"
        for stale in (log, truth):
            if stale.exists():
                import shutil

                shutil.rmtree(stale)  # a half-finished recording is recorded again
        c = self.cfg.collect
        domain, lock = claim_local_domain()
        prio = int(c.rt_priority)
        bridge = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "robolearn.deploy.sim_bridge",
                f"robot={self.cfg.robot.name}",
                f"domain_id={domain}",
                "bridge.initial_pose=default",
                f"bridge.record_truth={truth}",
                f"bridge.rt_priority={prio}",
                "bridge.status_every_s=0",
                f"bridge.seed={int(self.cfg.seed)}",
                *_mismatch_overrides(self.cfg),
            ],
            stdin=subprocess.PIPE,
            text=True,
        )
        deploy: subprocess.Popen[str] | None = None
        try:
            deploy = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "robolearn.deploy",
                    f"robot={self.cfg.robot.name}",
                    f"policy={self.artifact}",
                    "backend=dds",
                    f"domain_id={domain}",
                    "autostart=true",
                    "autopolicy_s=0.5",
                    "settings.ramp_s=1.0",
                    f"duration_s={float(c.seconds) + 1.5}",
                    "exit_damp_s=0.5",
                    f"record.dir={log}",
                    "keyboard=false",
                    "status_every_s=0",
                    f"loop.rt_priority={prio + 5 if prio else 0}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            in_policy = threading.Event()
            echo = threading.Thread(target=_echo_until_policy, args=(deploy, in_policy), daemon=True)
            echo.start()
            self._drive_sticks(bridge, deploy, in_policy, [list(map(float, row)) for row in c.schedule])
            code = deploy.wait(timeout=float(c.seconds) + 120)
            echo.join(5)
            if code != 0:
                raise UserError(f"asap collect: the deploy exited with code {code}; its output is above")
        finally:
            if deploy is not None and deploy.poll() is None:
                deploy.terminate()  # SIGTERM: the runtime damps and exits
                try:
                    deploy.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    deploy.kill()
            if bridge.poll() is None and bridge.stdin is not None:
                bridge.stdin.write("quit\n")
                bridge.stdin.flush()
            try:
                bridge.wait(timeout=30)
            except subprocess.TimeoutExpired:
                bridge.kill()
            lock.close()
        return write_delta_dataset(
            log, truth, folder / "delta", dataset_id=f"robolearn/asap-{self.cfg.robot.name}-v0"
        )

    def _drive_sticks(
        self,
        bridge: subprocess.Popen[str],
        deploy: subprocess.Popen[str],
        in_policy: threading.Event,
        schedule: list[list[float]],
    ) -> None:
        """Step the bridge's virtual remote through the schedule, timed from the deploy's HOLD ->
        POLICY transition; sticks map to the contract's command ranges (the operator's inverse)."""
        from robolearn.deploy.artifact import load_artifact

        ranges = load_artifact(self.artifact).contract.command_ranges
        deadband = 0.05  # settings.remote.deadband's default: smaller sticks read as 0
        assert bridge.stdin is not None
        while not in_policy.wait(0.05):
            if deploy.poll() is not None:
                return
        start = time.monotonic()
        for t, vx, vy, wz in sorted(schedule):
            while time.monotonic() < start + t:
                if deploy.poll() is not None:
                    return
                time.sleep(0.01)
            for stick, value, (lo, hi), sign in (
                ("ly", vx, ranges[0], 1.0),
                ("lx", vy, ranges[1], -1.0),
                ("rx", wz, ranges[2], -1.0),
            ):
                scale = hi if value >= 0 else -lo
                level = value / scale if scale else 0.0
                if value != 0 and not deadband <= abs(level) <= 1.0:
                    print(
                        f"warning: collect.schedule value {value} is outside the stick's reach ({lo}..{hi},"
                        f" deadband {deadband} of it); the robot is commanded"
                        f" {float(np.clip(level, -1, 1)) * scale if abs(level) >= deadband else 0.0}",
                        flush=True,
                    )
                bridge.stdin.write(f"stick {stick} {sign * level:.4f}\n")
            bridge.stdin.flush()

    def train_delta(self) -> Path:
        if (self.delta_run / "final" / "model.zip").is_file():
            return self.delta_run
        t = self.cfg.train_delta
        _run(
            [
                sys.executable,
                "-m",
                "robolearn.train",
                f"env={DELTA_ENVS[self.cfg.robot.name]}",
                f"env.kwargs.dataset={self.dataset}",
                f"env.kwargs.horizon={int(t.horizon)}",
                f"env.kwargs.delta_scale={float(t.delta_scale)}",
                "agent=rsl_ppo",
                f"agent.n_envs={int(t.n_envs)}",
                "agent.num_steps_per_env=16",
                "agent.init_noise_std=0.3",
                f"steps={int(t.steps)}",
                f"seed={int(self.cfg.seed)}",
                "logger.progress=lines",
                f"hydra.run.dir={self.delta_run}",
                *list(t.overrides),
            ],
            "train_delta",
        )
        return self.delta_run

    def finetune(self) -> Path:
        from robolearn.export import export_run

        if (self.finetuned_artifact / "contract.json").is_file():
            return self.finetuned_artifact
        assert self.pretrain_run is not None
        given = self.pretrain_run / ".hydra" / "overrides.yaml"
        if not given.is_file():
            raise UserError(
                f"{self.pretrain_run} has no .hydra/overrides.yaml to rebuild its training config from"
            )
        keep = [
            str(o)
            for o in OmegaConf.load(given)
            if not str(o).startswith(("hydra.", "steps=", "seed=", "logger."))
        ]
        f = self.cfg.finetune
        _run(
            [
                sys.executable,
                "-m",
                "robolearn.train",
                *keep,
                f"+env.kwargs.delta_action.run={self.delta_run}",
                f"agent.init_from={self.pretrain_run}",
                f"steps={int(f.steps)}",
                f"seed={int(self.cfg.seed)}",
                "logger.progress=lines",
                f"hydra.run.dir={self.finetune_run}",
                *list(f.overrides),
            ],
            "finetune",
        )
        export_run(self.finetune_run, self.finetuned_artifact, checkpoint="final", check_samples=64)
        return self.finetuned_artifact

    def evaluate(self) -> dict[str, Any]:
        from robolearn.deploy.sim2sim import Sim2SimConfig, run_sim2sim

        e = self.cfg.evaluate
        config = Sim2SimConfig(
            command=tuple(float(v) for v in e.command),  # type: ignore[arg-type]
            duration_s=float(e.seconds),
            episodes=int(e.episodes),
            seed=int(e.seed),
            settle_s=min(2.0, float(e.seconds) / 2),
            mismatch=tuple(_edits(self.cfg)),
        )
        rows: dict[str, Any] = {}
        for name, artifact in (("vanilla", self.artifact), ("asap", self.finetuned_artifact)):
            if (artifact / "contract.json").is_file():
                rows[name] = run_sim2sim(artifact, config)["summary"]
        result = {
            "mismatch": _mismatch_name(self.cfg),
            "edits": _edits(self.cfg),
            "command": list(e.command),
            "rows": rows,
        }
        atomic_write_json(self.out / "evaluate" / "results.json", result)
        lines = ["| policy | lin vel RMS (m/s) | yaw rate RMS (rad/s) | falls |", "|---|---|---|---|"]
        for name, s in rows.items():
            lin, yaw = s["lin_vel_rms"], s["yaw_rate_rms"]
            lines.append(
                f"| {name} | {'-' if lin is None else f'{lin:.3f}'} | {'-' if yaw is None else f'{yaw:.3f}'} |"
                f" {s['falls']}/{s['episodes']} |"
            )
        print(f"ASAP on the target (mismatch {_mismatch_name(self.cfg)}):\n" + "\n".join(lines), flush=True)
        return result


def run_asap(cfg: DictConfig) -> None:
    """Run the configured stage (or all, skipping finished ones)."""
    validate_asap_config(cfg)
    pipeline = Pipeline(cfg)
    stages = STAGES if cfg.stage == "all" else (str(cfg.stage),)
    for stage in stages:
        print(f"asap: stage {stage} -> {pipeline.out}", flush=True)
        getattr(pipeline, stage)()


HELP = verb_help(
    "asap",
    "stage=<pretrain|collect|train_delta|finetune|evaluate|all> robot=<go2|g1> mismatch=<name> pretrain.run=<dir>",
    "ASAP's delta-action pipeline, rehearsed sim-to-sim over the deploy path: a target with a physics\n"
    "mismatch (configs/mismatch/), recordings over DDS, a delta-action model, fine-tuning with it,\n"
    "and tracking on the target before and after. Each stage skips what it finished (docs/asap.md).",
    [
        ("stage", "pretrain | collect | train_delta | finetune | evaluate | all (default: all)"),
        ("robot", "go2 | g1 (default: go2)"),
        ("mismatch", "a configs/mismatch/ name (default: kp065); mismatch.edits=[...] states one inline"),
        ("pretrain.run", "the agent=rsl_ppo velocity run to align"),
        ("out", "output folder (default: outputs/asap/<robot>_<mismatch>)"),
        ("train_delta.steps / finetune.steps", "training budgets (env steps)"),
    ],
    [
        "python -m robolearn.asap stage=all robot=go2 mismatch=kp065 pretrain.run=outputs/benchmarks/go2_walk/trot_history/seed_0",
    ],
)

main = hydra_verb("asap", run_asap, help_text=HELP)

if __name__ == "__main__":
    main()
