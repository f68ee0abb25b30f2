"""ASAP (He et al. 2025): align a policy with a target robot's physics through a delta-action model.

    python -m robolearn.asap stage=<pretrain|collect|train_delta|train_dynamics|sysid|finetune|rounds|evaluate|all> \\
        robot=go2 mismatch=<name> pretrain.run=<velocity run dir> [methods=[asap,nominal,dr,sysid,delta_dynamics,oracle]]

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
- train_delta (method asap): `robolearn.train env=<Robot>DeltaAction-v0 agent=rsl_ppo` on that
  dataset (robolearn.sim2real.delta_task).
- train_dynamics (method delta_dynamics): regress the next velocities' residual on the same dataset
  (robolearn.sim2real.residual_dynamics).
- sysid (method sysid): fit global physical parameters (gains, torque limit, base mass, friction,
  joint friction, delay) to the same dataset by replaying it (robolearn.sim2real.physics.fit_sysid).
- finetune: for each of `methods`, the pretrain run's own training config, started from its networks
  (agent.init_from) with what the method adds (METHOD_HELP: the frozen delta on every action, wider
  randomisation, the fitted or the true physics, or nothing), then exported: every fine-tuned
  policy deploys as it is. asap_gated (our addition) is asap with the delta faded out away from the
  recorded states (finetune.support, robolearn.sim2real.support).
- rounds (rounds.count > 1, method asap; our addition: the paper makes one pass): round r deploys
  round r-1's fine-tuned policy on the target with the same schedule, trains a new delta model on
  every recording so far and fine-tunes round r-1's policy with it (arm asap_round<r>), so the
  delta model is fitted on the states the fine-tuned policy visits.
- evaluate: the pretrained ("vanilla") and every fine-tuned policy on the target (sim2sim with the
  mismatch), same commands and seeds: velocity and yaw-rate tracking errors, falls; and open loop,
  each method's simulator replaying the recording: joint and base position errors.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
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
from robolearn.config.validate import hydra_value
from robolearn.deploy.config import RobotNode
from robolearn.errors import UserError
from robolearn.utils.io import atomic_write_json

STAGES = ("pretrain", "collect", "train_delta", "train_dynamics", "sysid", "finetune", "rounds", "evaluate")
# How each fine-tuning arm aligns the policy with the target (vanilla: the pretrained policy as is).
METHODS = ("asap", "asap_gated", "nominal", "dr", "sysid", "delta_dynamics", "oracle")
METHOD_HELP = {
    "asap": "the frozen delta-action model on every action (train_delta)",
    "asap_gated": "asap with the delta faded out away from the recorded states (finetune.support; our addition)",
    "nominal": "more training in the nominal simulator (the control: the same budget, no alignment)",
    "dr": "wider domain randomisation (dr.randomization merged over the recipe's)",
    "sysid": "the recipe centred on physics fitted to the recordings (stage sysid)",
    "delta_dynamics": "a residual of the next velocities learnt from the recordings (stage train_dynamics)",
    "oracle": "the recipe centred on the target's true physics",
}
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
    # (start s after POLICY, vx, vy, yaw rate) steps of the bridge's virtual remote: by default the
    # evaluated commands, 5 s each (the paper records the motions it then tracks; a schedule that
    # missed sideways walking let fine-tuning exploit the delta model there, docs/asap.md)
    schedule: list[Any] = field(
        default_factory=lambda: [
            [0.0, 0.5, 0.0, 0.0],
            [5.0, -0.5, 0.0, 0.0],
            [10.0, 0.0, 0.3, 0.0],
            [15.0, 0.0, 0.0, 0.8],
        ]
    )
    rt_priority: int = 0  # SCHED_FIFO for the bridge and deploy (root); 0 = off
    attempts: int = 3  # a recording a guard ended (a fault: exit code 3) is recorded again, this often


@dataclass
class TrainDeltaSettings:
    steps: int = 2_000_000
    horizon: int = 4
    # Action units per unit of delta output. 2: a one-period command delay's delta (a_prev - a) fits
    # unclipped on the walker's recordings; 0.5 clipped it on 17% of the steps (docs/asap.md).
    delta_scale: float = 2.0
    # The PPO discount: within a short replay each step's delta mostly decides the next state, and
    # 0.99 spread its credit over steps it barely affects (0.0221 against 0.0290 rad at 500k steps).
    gamma: float = 0.5
    # The delta also reads the action recorded the step before: without it a delta on the current
    # action cannot express a command delay (docs/asap.md, friction_mass_delay).
    previous_action: bool = True
    n_envs: int = 1024  # 16 steps each per PPO update: 16k samples (256 envs fitted worse: docs/asap.md)
    # A fixed PPO learning rate: rsl-rl-lib's adaptive (KL) schedule cut it to its 1e-5 floor in the first
    # iteration of every delta run and kept it there (docs/asap.md, "Why the delta model did not fit").
    learning_rate: float = 1e-3
    # The delta model finetune adds and evaluate replays: best (the run's best deterministic evaluation
    # on the recording, its own objective) or final. Fixed-rate runs peak before their end (docs/asap.md).
    checkpoint: str = "best"
    overrides: list[str] = field(default_factory=list)  # extra robolearn.train overrides


DELTA_EXPLORATION = 0.15  # the delta policy's initial action noise, in action units


def train_delta_overrides(t: Any, robot: str, dataset: Path, seed: int, run: Path) -> list[str]:
    """The `robolearn.train` overrides of a delta-action run from train_delta settings (a
    TrainDeltaSettings or its config node): the one recipe the pipeline and benchmarks/asap_delta.py use."""
    return [
        f"env={DELTA_ENVS[robot]}",
        f"env.kwargs.dataset={dataset}",
        f"env.kwargs.horizon={int(t.horizon)}",
        f"env.kwargs.delta_scale={float(t.delta_scale)}",
        f"env.kwargs.previous_action={str(bool(t.previous_action)).lower()}",
        "agent=rsl_ppo",
        f"agent.n_envs={int(t.n_envs)}",
        "agent.num_steps_per_env=16",
        # A delta starts near zero, exploring 0.15 action units whatever its scale (0.3 at scale 0.5),
        # its initial mean near zero too (the actor's last layer x 0.01), with no entropy bonus (it
        # grew the noise back at small scales: docs/asap.md).
        f"agent.init_noise_std={DELTA_EXPLORATION / float(t.delta_scale):g}",
        "agent.actor_output_gain=0.01",
        "agent.entropy_coef=0.0",
        f"agent.gamma={float(t.gamma)}",
        "agent.schedule=fixed",
        f"agent.learning_rate={float(t.learning_rate)}",
        f"steps={int(t.steps)}",
        f"seed={seed}",
        "logger.progress=lines",
        f"hydra.run.dir={run}",
        *list(t.overrides),
    ]


def ran_with(run: Path, overrides: list[str]) -> bool:
    """Whether `run` was trained with exactly these robolearn.train overrides (its .hydra/overrides.yaml),
    hydra.* settings (the run folder) aside."""
    given = run / ".hydra" / "overrides.yaml"
    if not given.is_file():
        return False

    def command(items: list[str]) -> list[str]:
        return [a for a in items if not a.startswith("hydra.")]

    return command([str(o) for o in OmegaConf.load(given)]) == command(overrides)


@dataclass
class FinetuneSettings:
    steps: int = 2_000_000  # env steps of fine-tuning (added to nothing: a new run)
    overrides: list[str] = field(default_factory=list)
    # Other pipelines' out folders: an arm finished there with the same training command to the letter,
    # from the same pretrained actor, is copied, not trained again (a command's training is
    # deterministic). nominal and dr always match across targets (they read neither the target nor the
    # recording); asap and delta_dynamics never do (their commands name their own folder); sysid and
    # oracle only where their physics values came out identical.
    reuse: list[str] = field(default_factory=list)
    # The asap_gated arm (robolearn.sim2real.support): the delta at full strength up to `near` recording
    # standard deviations (RMS over state features) from the nearest recorded state, none beyond `far`.
    support: dict[str, float] = field(default_factory=lambda: {"near": 1.0, "far": 2.0})


@dataclass
class TrainDynamicsSettings:
    epochs: int = 300  # robolearn.sim2real.residual_dynamics.fit_residual
    holdout: float = 0.2  # the recording's last share, for validation and the epoch kept


@dataclass
class SysidSettings:
    horizon: int = 4  # policy steps replayed from each recorded start
    starts: int = 384  # recorded starts replayed per candidate (drawn evenly)
    max_evals: int = 80  # Nelder-Mead replays per delay
    delays: list[int] = field(default_factory=lambda: [0, 1, 2])  # control periods tried


@dataclass
class DrSettings:
    # Merged over the recipe's randomization: ranges that cover the shipped mismatches without
    # knowing which one the target has.
    randomization: dict[str, Any] = field(
        default_factory=lambda: {
            "kp_scale": [0.5, 1.2],
            "kd_scale": [0.6, 1.4],
            "motor_strength": [0.75, 1.1],
            "added_base_mass": [-1.0, 3.0],
            "friction": [0.3, 1.25],
            "joint_friction": [0.5, 2.5],
            "action_delay": [0, 2],
        }
    )


@dataclass
class RoundsSettings:
    # ASAP's passes: 1 is the paper's (collect, delta, fine-tune once). Round r > 1 records round r-1's
    # fine-tuned policy on the target (collect's settings), trains a delta model on every recording so
    # far (train_delta's settings) and fine-tunes round r-1's policy with it for finetune.steps: arm
    # asap_round<r>, with r x the target data and fine-tuning of the one-pass arms.
    count: int = 1


@dataclass
class EvaluateSettings:
    seconds: float = 10.0
    episodes: int = 2  # per command
    # vx, vy, yaw rate: forward, backward, sideways and turning, each held for a whole episode
    commands: list[Any] = field(
        default_factory=lambda: [[0.5, 0.0, 0.0], [-0.5, 0.0, 0.0], [0.0, 0.3, 0.0], [0.0, 0.0, 0.8]]
    )
    seed: int = 100
    replay_horizon: int = 4  # open loop: policy steps replayed from each recorded start


@dataclass
class AsapConfig:
    """Schema of configs/asap.yaml."""

    stage: str = "all"
    robot: RobotNode = field(default_factory=RobotNode)  # configs/robot/<name>.yaml, as deploy's
    out: str | None = None  # default outputs/asap/<robot>_<mismatch name>
    seed: int = 0
    mismatch: Any = None  # configs/mismatch/<name>.yaml: {name, description, edits}
    methods: list[str] = field(default_factory=lambda: ["asap"])  # fine-tuning arms, see METHODS
    pretrain: PretrainSettings = field(default_factory=PretrainSettings)
    collect: CollectSettings = field(default_factory=CollectSettings)
    train_delta: TrainDeltaSettings = field(default_factory=TrainDeltaSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    train_dynamics: TrainDynamicsSettings = field(default_factory=TrainDynamicsSettings)
    sysid: SysidSettings = field(default_factory=SysidSettings)
    dr: DrSettings = field(default_factory=DrSettings)
    rounds: RoundsSettings = field(default_factory=RoundsSettings)
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
    commands = [("pretrain.command", cfg.pretrain.command)]
    commands += [(f"evaluate.commands[{i}]", c) for i, c in enumerate(cfg.evaluate.commands)]
    for key, value in commands:
        if len(value) != 3 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            raise UserError(
                f"{key}={list(value)} must be three numbers: vx (m/s), vy (m/s), yaw rate (rad/s)"
            )
    if not cfg.evaluate.commands:
        raise UserError("evaluate.commands is empty: give at least one [vx, vy, yaw rate]")
    for method in cfg.methods:
        if method not in METHODS:
            raise UserError(f"methods has '{method}', not a method; choose from: {', '.join(METHODS)}")
    if len(set(cfg.methods)) != len(cfg.methods):
        raise UserError(f"methods={list(cfg.methods)} names a method twice")
    from robolearn.envs.tasks.randomization import Randomization

    try:
        Randomization.from_kwargs(OmegaConf.to_container(cfg.dr.randomization, resolve=True))  # type: ignore[arg-type]
    except UserError as err:
        raise UserError(f"dr: {err}") from None
    for row in cfg.collect.schedule:
        if len(row) != 4 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row):
            raise UserError(
                f"collect.schedule row {list(row)} must be [start s, vx, vy, yaw rate], e.g. [5.0, 0.5, 0.0, 0.0]"
            )
    if cfg.train_delta.checkpoint not in ("final", "best"):
        raise UserError(
            f"train_delta.checkpoint={cfg.train_delta.checkpoint} is not allowed; choose final or best"
        )
    for folder in cfg.finetune.reuse:
        if not Path(str(folder)).expanduser().is_dir():
            raise UserError(f"finetune.reuse has {folder}, not a folder: give ASAP pipeline out folders")
    from robolearn.sim2real.support import check_support_options

    check_support_options(dict(cfg.finetune.support), "finetune.support")
    if not (math.isfinite(float(cfg.train_delta.learning_rate)) and float(cfg.train_delta.learning_rate) > 0):
        raise UserError(f"train_delta.learning_rate={cfg.train_delta.learning_rate} must be > 0, e.g. 0.001")
    if not 0.0 < float(cfg.train_delta.gamma) <= 1.0:
        raise UserError(f"train_delta.gamma={cfg.train_delta.gamma} must be a discount in (0, 1], e.g. 0.5")
    count = cfg.rounds.count
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise UserError(f"rounds.count={count!r} must be a whole number of ASAP passes >= 1, e.g. 2")
    if count > 1 and "asap" not in cfg.methods:
        raise UserError(
            f"rounds.count={count} repeats the asap arm, which methods={list(cfg.methods)} lacks; add asap"
        )
    if int(cfg.collect.attempts) < 1:
        raise UserError(f"collect.attempts={cfg.collect.attempts} must be at least 1")
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


def _mismatch_overrides(cfg: DictConfig) -> list[str]:
    """The deploy/bridge overrides that give a subprocess this config's mismatch."""
    return [f"mismatch.name={_mismatch_name(cfg)}", f"mismatch.edits={hydra_value(_edits(cfg))}"]


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
    def dynamics_model(self) -> Path:
        return self.out / "train_dynamics" / "model.pt"

    @property
    def sysid_file(self) -> Path:
        return self.out / "sysid" / "fit.json"

    def round_dir(self, r: int) -> Path:
        """Round r's (> 1) recording and delta model; round 1's are collect/ and train_delta/."""
        return self.out / "rounds" / f"r{r}"

    def round_dataset(self, r: int) -> Path:
        """The delta dataset round r trains on: round 1's recording, then each later round's."""
        return self.dataset if r == 1 else self.round_dir(r) / "collect" / "delta" / "data"

    def round_delta_run(self, r: int) -> Path:
        return self.delta_run if r == 1 else self.round_dir(r) / "train_delta"

    def finetune_run(self, method: str) -> Path:
        return self.out / "finetune" / method / "run"

    def finetuned_artifact(self, method: str) -> Path:
        return self.out / "finetune" / method / "artifact"

    def pretrain_overrides(self) -> list[str]:
        """The pretrain run's own training overrides (its .hydra/overrides.yaml) less run bookkeeping."""
        assert self.pretrain_run is not None
        given = self.pretrain_run / ".hydra" / "overrides.yaml"
        if not given.is_file():
            raise UserError(
                f"{self.pretrain_run} has no .hydra/overrides.yaml to rebuild its training config from"
            )
        return [
            str(o)
            for o in OmegaConf.load(given)
            if not str(o).startswith(("hydra.", "steps=", "seed=", "logger."))
        ]

    def recipe_randomization(self) -> dict[str, Any]:
        """The pretrain run's domain randomisation (env.kwargs.randomization of its config.yaml), which
        the dr, sysid and oracle arms extend. Read from the run, not composed again: this verb runs
        inside Hydra, which cannot compose another config while it is initialised."""
        assert self.pretrain_run is not None
        node = OmegaConf.select(OmegaConf.load(self.pretrain_run / "config.yaml"), "env.kwargs.randomization")
        return dict(OmegaConf.to_container(node, resolve=True) or {}) if node is not None else {}  # type: ignore[arg-type]

    def method_overrides(self, method: str) -> list[str]:
        """What fine-tuning arm `method` adds to the pretrain run's training command."""
        from robolearn.sim2real.physics import TrainingPhysics, oracle_physics, params_from_dict

        r = 1 if method == "asap_gated" else asap_round(method)
        if r:
            delta = self.round_delta_run(r)
            if not (delta / "final" / "model.zip").is_file():
                stage = "train_delta" if r == 1 else "rounds"
                raise UserError(f"{delta} has no final model: run stage={stage} first")
            gate = self.cfg.finetune.support
            return [
                f"+env.kwargs.delta_action.run={delta}",
                f"+env.kwargs.delta_action.checkpoint={self.cfg.train_delta.checkpoint}",
                *(
                    [f"+env.kwargs.delta_action.support={{near: {float(gate.near)}, far: {float(gate.far)}}}"]
                    if method == "asap_gated"
                    else []
                ),
            ]
        if method == "nominal":
            return []
        if method == "delta_dynamics":
            if not self.dynamics_model.is_file():
                raise UserError(f"{self.dynamics_model} is missing: run stage=train_dynamics first")
            return [f"+env.kwargs.residual_dynamics.model={self.dynamics_model}"]
        recipe = self.recipe_randomization()
        if method == "dr":
            wide = OmegaConf.to_container(self.cfg.dr.randomization, resolve=True)
            return [f"++env.kwargs.randomization={hydra_value({**recipe, **wide})}"]  # type: ignore[dict-item]
        if method == "sysid":
            if not self.sysid_file.is_file():
                raise UserError(f"{self.sysid_file} is missing: run stage=sysid first")
            fitted = params_from_dict(json.loads(self.sysid_file.read_text())["params"])
            return TrainingPhysics(fitted).overrides(recipe)
        if method == "oracle":
            truth = oracle_physics(
                str(self.cfg.robot.name), _edits(self.cfg), self.out / "oracle", self.cfg.robot.model or None
            )
            return truth.overrides(recipe)
        raise UserError(f"method {method} is not one of {', '.join(METHODS)}")

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
        if (self.dataset / "metadata.json").is_file():
            return self.dataset
        if not (self.artifact / "contract.json").is_file():
            raise UserError(f"{self.artifact} is missing: run stage=pretrain first")
        return self._collect(self.out / "collect", self.artifact)

    def _collect(self, folder: Path, artifact: Path, earlier: tuple[Path, ...] = ()) -> Path:
        """Record `artifact` on the target into folder/log and folder/truth (again after a fault) and
        write folder/delta: this recording after the `earlier` collect folders' recordings."""
        from robolearn.sim2real.recordings import write_delta_dataset

        log, truth = folder / "log", folder / "truth"
        attempts = int(self.cfg.collect.attempts)
        for attempt in range(1, attempts + 1):
            for stale in (log, truth):
                if stale.exists():
                    import shutil

                    shutil.rmtree(stale)  # a half-finished recording is recorded again
            code = self._record(log, truth, artifact)
            if code == 0:
                break
            # Exit code 3: a guard tripped (on a busy host, most often a late state: stale_state).
            if code != 3 or attempt == attempts:
                raise UserError(
                    f"asap collect: the deploy exited with code {code} (attempt {attempt} of {attempts});"
                    " its output is above"
                )
            print(
                f"collect: the deploy faulted (exit code 3); recording again, attempt {attempt + 1} of {attempts}"
            )
        first, *rest = (*earlier, folder)
        return write_delta_dataset(
            first / "log",
            first / "truth",
            folder / "delta",
            dataset_id=f"robolearn/asap-{self.cfg.robot.name}-v0",
            more=[(f / "log", f / "truth") for f in rest],
        )

    def _record(self, log: Path, truth: Path, artifact: Path) -> int:
        """One recording: the bridge playing the target, the deploy driving it; the deploy's exit code."""
        from robolearn.deploy.dds import claim_local_domain

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
                    f"policy={artifact}",
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
            schedule = [list(map(float, row)) for row in c.schedule]
            self._drive_sticks(bridge, deploy, in_policy, schedule, artifact)
            code = deploy.wait(timeout=float(c.seconds) + 120)
            echo.join(5)
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
        return int(code)

    def _drive_sticks(
        self,
        bridge: subprocess.Popen[str],
        deploy: subprocess.Popen[str],
        in_policy: threading.Event,
        schedule: list[list[float]],
        artifact: Path,
    ) -> None:
        """Step the bridge's virtual remote through the schedule, timed from the deploy's HOLD ->
        POLICY transition; sticks map to the contract's command ranges (the operator's inverse)."""
        from robolearn.deploy.artifact import load_artifact

        ranges = load_artifact(artifact).contract.command_ranges
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

    def train_delta(self, r: int = 1) -> Path:
        """Round r's delta model (train_delta's settings) on round r's dataset."""
        run, arm = self.round_delta_run(r), asap_arm(r)
        overrides = train_delta_overrides(
            self.cfg.train_delta, str(self.cfg.robot.name), self.round_dataset(r), int(self.cfg.seed), run
        )
        if (run / "final" / "model.zip").is_file():
            if not ran_with(run, overrides):  # never fine-tune on a delta of other settings
                later = f", {self.out / 'rounds'}, the asap_round* fine-tuning" if r == 1 else ""
                raise UserError(
                    f"{run} was trained with other train_delta settings than these; delete it"
                    f" with {self.out / 'finetune' / arm}{later} and {self.out / 'evaluate'} to train it"
                    " again, or give another out="
                )
            return run
        _run([sys.executable, "-m", "robolearn.train", *overrides], f"train_delta ({arm})")
        return run

    def train_dynamics(self) -> Path:
        """Fit the delta-dynamics baseline's residual model (robolearn.sim2real.residual_dynamics)."""
        from robolearn.sim2real.residual_dynamics import fit_residual

        if self.dynamics_model.is_file():
            return self.dynamics_model
        if not (self.dataset / "metadata.json").is_file():
            raise UserError(f"{self.dataset} is missing: run stage=collect first")
        c = self.cfg.train_dynamics
        t0 = time.time()
        fit = fit_residual(
            self.dataset,
            self.dynamics_model,
            robot=str(self.cfg.robot.name),
            epochs=int(c.epochs),
            seed=int(self.cfg.seed),
            holdout=float(c.holdout),
        )
        report = {**fit.report, "seconds": round(time.time() - t0, 1)}
        atomic_write_json(self.dynamics_model.with_name("report.json"), report)
        explained = ", ".join(f"{k} {v:.2f}" for k, v in report["variance_explained_held_out"].items())
        print(f"train_dynamics: held-out variance explained: {explained}", flush=True)
        return self.dynamics_model

    def sysid(self) -> dict[str, Any]:
        """Fit PhysicsParams to the collected dataset (robolearn.sim2real.physics.fit_sysid)."""
        from robolearn.sim2real.physics import fit_sysid

        if self.sysid_file.is_file():
            return dict(json.loads(self.sysid_file.read_text()))
        if not (self.dataset / "metadata.json").is_file():
            raise UserError(f"{self.dataset} is missing: run stage=collect first")
        c = self.cfg.sysid
        t0 = time.time()
        params, report = fit_sysid(
            self.dataset,
            horizon=int(c.horizon),
            starts=int(c.starts),
            max_evals=int(c.max_evals),
            delays=[int(d) for d in c.delays],
            seed=int(self.cfg.seed),
            robot=str(self.cfg.robot.name),
            log=lambda line: print(line, flush=True),
        )
        report["seconds"] = round(time.time() - t0, 1)
        atomic_write_json(self.sysid_file, report)
        print(f"sysid: fitted {params.as_dict()} in {report['seconds']} s", flush=True)
        return report

    def finetune(self) -> list[Path]:
        return [self.finetune_method(m) for m in self.cfg.methods]

    def finetune_method(self, method: str) -> Path:
        from robolearn.export import export_run

        artifact, run = self.finetuned_artifact(method), self.finetune_run(method)
        if (artifact / "contract.json").is_file():
            return artifact
        args = self.finetune_args(method)
        if self.reuse_finished(method, args):
            return artifact
        (self.out / "finetune" / method / "reused.json").unlink(missing_ok=True)  # trained here
        _run([sys.executable, "-m", "robolearn.train", *args], f"finetune ({method})")
        export_run(run, artifact, checkpoint="final", check_samples=64)
        return artifact

    def finetune_args(self, method: str) -> list[str]:
        """Arm `method`'s robolearn.train overrides: the pretrain run's, the arm's, the budget."""
        f = self.cfg.finetune
        r = asap_round(method)
        start = self.pretrain_run if r <= 1 else self.finetune_run(asap_arm(r - 1))  # round r-1's policy
        return [
            *self.pretrain_overrides(),
            *self.method_overrides(method),
            f"agent.init_from={start}",
            f"steps={int(f.steps)}",
            f"seed={int(self.cfg.seed)}",
            "logger.progress=lines",
            f"hydra.run.dir={self.finetune_run(method)}",
            *list(f.overrides),
        ]

    def rounds(self) -> list[Path]:
        """ASAP's later rounds (rounds.count > 1): for r = 2..count, record round r-1's fine-tuned
        policy on the target, train a delta model on every recording so far, fine-tune round r-1's
        policy with it. Each step is skipped when done, so the stage resumes."""
        done: list[Path] = []
        for r in range(2, int(self.cfg.rounds.count) + 1):
            before = self.finetuned_artifact(asap_arm(r - 1))
            if not (before / "contract.json").is_file():
                stage = "finetune" if r == 2 else "rounds"
                raise UserError(f"{before} is missing: run stage={stage} (methods with asap) first")
            # What round r was recorded from: round r-1's policy, byte for byte. A round kept from
            # another policy (round r-1 trained again) would refit on the wrong states.
            recorded_from = self.round_dir(r) / "recorded_from.json"
            policy = {"policy_sha256": hashlib.sha256((before / "policy.onnx").read_bytes()).hexdigest()}
            if (self.round_dataset(r) / "metadata.json").is_file():
                if not recorded_from.is_file() or json.loads(recorded_from.read_text()) != policy:
                    raise UserError(
                        f"{self.round_dir(r)} was recorded from another {asap_arm(r - 1)} policy than"
                        f" {before}; delete {self.out / 'rounds'} and the asap_round* folders under"
                        f" {self.out / 'finetune'} to run the later rounds again"
                    )
            else:
                earlier = (self.out / "collect", *(self.round_dir(k) / "collect" for k in range(2, r)))
                for folder in earlier:
                    for raw in (folder / "log", folder / "truth"):
                        if not raw.is_dir():  # checked before minutes of recording, not after
                            raise UserError(
                                f"{raw} is missing: round {r} joins every earlier recording's logs;"
                                f" record them again (delete {folder} and the stages after it)"
                            )
                print(f"rounds: recording {asap_arm(r - 1)} on the target (round {r})", flush=True)
                atomic_write_json(recorded_from, policy)  # before: a recording is only kept whole
                self._collect(self.round_dir(r) / "collect", before, earlier)
            self.train_delta(r)
            done.append(self.finetune_method(asap_arm(r)))
        return done

    def reuse_finished(self, method: str, args: list[str]) -> bool:
        """Copy arm `method`'s run and export from a finetune.reuse folder where the same training
        command (`args` less hydra settings) finished from the same pretrained actor (pretrain/artifact's
        policy.onnx, byte for byte), in one go (no resume) and with the same package versions; False
        where none did. The copy's reused.json names the folder it came from."""
        from robolearn.utils.sysinfo import package_versions

        mine = self.artifact / "policy.onnx"
        if not mine.is_file():
            return False
        for folder in self.cfg.finetune.reuse:
            donor = Path(str(folder)).expanduser().resolve()
            arm = donor / "finetune" / method
            their_run, their_artifact = arm / "run", arm / "artifact"
            summary = their_run / "summary.json"
            theirs = donor / "pretrain" / "artifact" / "policy.onnx"
            if donor == self.out or not all(
                f.is_file() for f in (their_artifact / "contract.json", summary, theirs)
            ):
                continue
            done = json.loads(summary.read_text())
            if (
                not ran_with(their_run, args)
                or theirs.read_bytes() != mine.read_bytes()
                or done.get("status") != "completed"
                or done.get("resumes", 0) != 0
                or done.get("versions") != package_versions()
            ):
                continue
            run, artifact = self.finetune_run(method), self.finetuned_artifact(method)
            record = self.out / "finetune" / method / "reused.json"
            atomic_write_json(record, {"from": str(donor)})  # before the export that marks the arm done
            for src, dest in ((their_run, run), (their_artifact, artifact)):
                partial = dest.with_name(dest.name + ".partial")
                shutil.rmtree(partial, ignore_errors=True)
                shutil.copytree(src, partial)
                shutil.rmtree(dest, ignore_errors=True)
                partial.rename(dest)
            print(f"finetune ({method}): the same training command finished in {donor}; copied", flush=True)
            return True
        return False

    def evaluate(self) -> dict[str, Any]:
        """Closed loop on the target (sim2sim with the mismatch) for the pretrained policy and every
        fine-tuned one; open loop, each simulator's replay error on the collected recording."""
        from robolearn.deploy.sim2sim import Sim2SimConfig, run_sim2sim

        e = self.cfg.evaluate
        policies = {"vanilla": self.artifact}
        policies.update({m: self.finetuned_artifact(m) for m in METHODS})
        later = range(2, int(self.cfg.rounds.count) + 1)  # validated: only with asap among the methods
        policies.update({asap_arm(r): self.finetuned_artifact(asap_arm(r)) for r in later})
        rows: dict[str, Any] = {}
        for name, artifact in policies.items():
            if not (artifact / "contract.json").is_file():
                continue
            per_command = []
            for command in e.commands:
                config = Sim2SimConfig(
                    command=tuple(float(v) for v in command),  # type: ignore[arg-type]
                    duration_s=float(e.seconds),
                    episodes=int(e.episodes),
                    seed=int(e.seed),
                    settle_s=min(2.0, float(e.seconds) / 2),
                    mismatch=tuple(_edits(self.cfg)),
                )
                s = run_sim2sim(artifact, config)["summary"]
                per_command.append({"command": list(command), **{k: s[k] for k in _CLOSED_KEYS}})
            rows[name] = {
                "lin_vel_rms": _mean_or_none([c["lin_vel_rms"] for c in per_command]),
                "yaw_rate_rms": _mean_or_none([c["yaw_rate_rms"] for c in per_command]),
                "falls": sum(int(c["falls"]) for c in per_command),
                "episodes": sum(int(c["episodes"]) for c in per_command),
                "commands": per_command,
            }
        result: dict[str, Any] = {
            "mismatch": _mismatch_name(self.cfg),
            "edits": _edits(self.cfg),
            "seed": int(self.cfg.seed),
            "closed_loop": rows,
            "open_loop": {},
        }
        atomic_write_json(self.out / "evaluate" / "results.json", result)  # kept if the replay fails
        result["open_loop"] = self.open_loop()
        atomic_write_json(self.out / "evaluate" / "results.json", result)
        print(
            f"ASAP on the target (mismatch {_mismatch_name(self.cfg)}):\n" + results_table(result), flush=True
        )
        return result

    def open_loop(self) -> dict[str, Any]:
        """Replay error of each simulator on the collected recording: nominal (vanilla, nominal, dr),
        nominal + delta model (asap), the fit (sysid) and the target's physics (oracle)."""
        from robolearn.sim2real.physics import (
            TrainingPhysics,
            oracle_physics,
            params_from_dict,
            replay_errors,
            replay_starts,
        )

        if not (self.dataset / "metadata.json").is_file():
            return {}
        h = int(self.cfg.evaluate.replay_horizon)
        robot = str(self.cfg.robot.name)
        starts = replay_starts(self.dataset, h)
        sims: dict[str, Any] = {"nominal": {}}
        for r in range(1, int(self.cfg.rounds.count) + 1):  # every round's delta, on round 1's recording
            if (self.round_delta_run(r) / "final" / "model.zip").is_file():
                # Replayed with the scale, joints and inputs the run was trained with (delta_settings).
                sims[asap_arm(r)] = {
                    "delta_run": self.round_delta_run(r),
                    "checkpoint": str(self.cfg.train_delta.checkpoint),
                }
        if self.sysid_file.is_file():
            fitted = params_from_dict(json.loads(self.sysid_file.read_text())["params"])
            sims["sysid"] = {"physics": TrainingPhysics(fitted)}
        if self.dynamics_model.is_file():
            sims["delta_dynamics"] = {"residual": self.dynamics_model}
        if "oracle" in self.cfg.methods:
            sims["oracle"] = {
                "physics": oracle_physics(
                    robot, _edits(self.cfg), self.out / "oracle", self.cfg.robot.model or None
                )
            }
        out: dict[str, Any] = {}
        for name, kwargs in sims.items():
            err = replay_errors(self.dataset, starts, horizon=h, robot=robot, **kwargs)
            out[name] = {"joint_pos_rms": err.joint_pos_rms, "base_pos": err.base_pos, "starts": err.starts}
        return out


_CLOSED_KEYS = ("lin_vel_rms", "yaw_rate_rms", "falls", "episodes")


def asap_arm(r: int) -> str:
    """The fine-tuning arm of ASAP's round r: asap (the paper's one pass), then asap_round<r>."""
    return "asap" if r == 1 else f"asap_round{r}"


def asap_round(method: str) -> int:
    """The ASAP round an arm name is (asap_arm's inverse); 0 for the other methods."""
    if method == "asap":
        return 1
    later = re.fullmatch(r"asap_round([2-9]|[1-9][0-9]+)", method)
    return int(later.group(1)) if later else 0


def _mean_or_none(values: list[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def results_table(result: dict[str, Any]) -> str:
    """Markdown: closed loop per policy (mean over the commands) and open-loop replay per simulator."""
    lines = ["| policy | lin vel RMS (m/s) | yaw rate RMS (rad/s) | falls |", "|---|---|---|---|"]
    for name, r in result["closed_loop"].items():
        lines.append(
            f"| {name} | {_fmt(r['lin_vel_rms'])} | {_fmt(r['yaw_rate_rms'])} | {r['falls']}/{r['episodes']} |"
        )
    if result.get("open_loop"):
        lines += ["", "| simulator | replay joint RMS (rad) | replay base (m) |", "|---|---|---|"]
        for name, r in result["open_loop"].items():
            lines.append(f"| {name} | {_fmt(r['joint_pos_rms'], 4)} | {_fmt(r['base_pos'], 4)} |")
    return "\n".join(lines)


def run_asap(cfg: DictConfig) -> None:
    """Run the configured stage (or all, skipping finished ones)."""
    validate_asap_config(cfg)
    pipeline = Pipeline(cfg)
    stages: tuple[str, ...] = (str(cfg.stage),)
    if cfg.stage == "all":
        needed = {
            "train_delta": ("asap", "asap_gated"),
            "sysid": ("sysid",),
            "train_dynamics": ("delta_dynamics",),
            "rounds": ("asap",),
        }  # the stages only some methods need
        stages = tuple(s for s in STAGES if s not in needed or set(needed[s]) & set(cfg.methods))
    for stage in stages:
        print(f"asap: stage {stage} -> {pipeline.out}", flush=True)
        getattr(pipeline, stage)()


HELP = verb_help(
    "asap",
    "stage=<pretrain|collect|train_delta|train_dynamics|sysid|finetune|rounds|evaluate|all> robot=<go2|g1> mismatch=<name> pretrain.run=<dir> methods=[asap,...]",
    "ASAP's delta-action pipeline, rehearsed sim-to-sim over the deploy path: a target with a physics\n"
    "mismatch (configs/mismatch/), recordings over DDS, a delta-action model, fine-tuning with it,\n"
    "and tracking on the target before and after. Each stage skips what it finished (docs/asap.md).",
    [
        (
            "stage",
            "pretrain | collect | train_delta | train_dynamics | sysid | finetune | rounds | evaluate | all",
        ),
        ("methods", "fine-tuning arms: asap, nominal, dr, sysid, delta_dynamics, oracle (default: [asap])"),
        ("robot", "go2 | g1 (default: go2)"),
        ("mismatch", "a configs/mismatch/ name (default: kp065); mismatch.edits=[...] states one inline"),
        ("pretrain.run", "the agent=rsl_ppo velocity run to align"),
        ("out", "output folder (default: outputs/asap/<robot>_<mismatch>)"),
        ("train_delta.steps / finetune.steps", "training budgets (env steps)"),
        (
            "rounds.count",
            "ASAP passes (default 1, the paper's); more add arms asap_round2..: collect again, refit",
        ),
    ],
    [
        "python -m robolearn.asap stage=all robot=go2 mismatch=kp065 pretrain.run=outputs/benchmarks/go2_walk/trot_history/seed_0",
    ],
)

main = hydra_verb("asap", run_asap, help_text=HELP)

if __name__ == "__main__":
    main()
