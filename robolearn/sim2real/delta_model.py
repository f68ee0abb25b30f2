"""A trained delta-action model, frozen, added to a task's actions (ASAP's finetune stage).

`env.kwargs.delta_action: {run: <train_delta run dir>, checkpoint: final}` on a robot task makes every
step's robot action a' = a + scale x mask x d(s, a) (robolearn.sim2real.delta.apply_delta), with d the
delta run's deterministic actor on delta_observation(s, a) (robolearn.sim2real.delta_task). The scale
and joint mask are read from the delta run's own config, so finetune cannot use another scale than the
one train_delta learnt with; a run trained with previous_action (the delta task's default) also reads
the policy's action of the step before. `support: {near, far}` fades the delta out away from the
states of the delta run's recording (robolearn.sim2real.support; the asap_gated arm). The policy being fine-tuned still observes its own action as
last_action; the deployed policy runs without the delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from omegaconf import OmegaConf

from robolearn.envs.backends.base import SimFrame
from robolearn.errors import UserError
from robolearn.robots.spec import RobotSpec
from robolearn.sim2real.delta import DELTA_CLIP, apply_delta, joint_mask
from robolearn.sim2real.delta_task import delta_observation
from robolearn.sim2real.recordings import load_delta_dataset
from robolearn.sim2real.support import RecordingSupport, check_support_options, frame_features, support_gate

CHECKPOINTS = ("final", "best")


def delta_actions(policy: Any, obs: np.ndarray) -> np.ndarray:
    """(rows, joints) deterministic delta of a delta run's actor on delta observations, clipped to
    its output range: what finetune adds and what a replay steps with."""
    raw = np.asarray(policy.predict(obs, deterministic=True)[0]).reshape(len(obs), -1)
    return np.clip(raw, -DELTA_CLIP, DELTA_CLIP)


class DeltaSettings(NamedTuple):
    """How a delta run's actor is applied: its scale, its joint names (None: every joint) and whether
    it reads the previous action."""

    scale: float
    joints: list[str] | None
    previous_action: bool


def delta_settings(run: Path) -> DeltaSettings:
    """The delta settings a train_delta run was trained with (its config.yaml's env.kwargs); a run from
    before previous_action existed did not read it."""
    kwargs = OmegaConf.select(OmegaConf.load(Path(run) / "config.yaml"), "env.kwargs", default=None) or {}
    joints = kwargs.get("delta_joints")
    return DeltaSettings(
        float(kwargs.get("delta_scale", 0.5)),
        None if joints is None else [str(j) for j in joints],
        bool(kwargs.get("previous_action", False)),
    )


class FrozenDelta:
    """A delta run's actor with the scale and mask it was trained with."""

    def __init__(
        self,
        run: Path,
        policy: Any,
        robot: str,
        scale: float,
        mask: np.ndarray,
        previous_action: bool = False,
        support: RecordingSupport | None = None,
        near_far: tuple[float, float] = (0.0, 1.0),
    ) -> None:
        self.run = run
        self.policy = policy
        self.robot = robot
        self.scale = scale
        self.mask = mask
        self.previous_action = previous_action
        self.support = support
        self.near_far = near_far
        self.gate_sum = 0.0  # the support gate's total and count over every env step so far
        self.gate_count = 0

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any], spec: RobotSpec) -> FrozenDelta:
        """Load {run, checkpoint} for a task on `spec`; one-line errors for a wrong run or robot."""
        unknown = sorted(set(options) - {"run", "checkpoint", "support"})
        if unknown:
            raise UserError(f"delta_action.{unknown[0]} is not an option; options: run, checkpoint, support")
        near_far = check_support_options(options["support"]) if options.get("support") else None
        if not options.get("run"):
            raise UserError("delta_action.run is missing: give the train_delta run directory")
        run = Path(str(options["run"])).expanduser()
        which = str(options.get("checkpoint") or "final")
        if which not in CHECKPOINTS:
            raise UserError(
                f"delta_action.checkpoint={which} is not allowed; choose one of {', '.join(CHECKPOINTS)}"
            )
        config = run / "config.yaml"
        model = run / which / "model.zip"
        if not config.is_file() or not model.is_file():
            raise UserError(
                f"delta_action.run={run} is not a finished train_delta run (no config.yaml or {which}/model.zip)"
            )
        cfg = OmegaConf.load(config)
        env_id = str(OmegaConf.select(cfg, "env.id", default=""))
        if "DeltaAction" not in env_id:
            raise UserError(f"delta_action.run={run} trained {env_id or 'no env'}, not a delta-action task")
        from robolearn.envs.tasks import TASKS

        robot = str(TASKS[env_id].kwargs["robot"]) if env_id in TASKS else ""
        if robot != spec.name:
            raise UserError(
                f"delta_action.run={run} is a delta for the {robot}, not the {spec.name}; train one on its recordings"
            )
        if str(OmegaConf.select(cfg, "agent.algo", default="rsl_ppo")) != "rsl_ppo":
            raise UserError(f"delta_action.run={run}: only agent=rsl_ppo delta runs load here")
        from robolearn.agents.rsl_ppo import RslPolicy

        settings = delta_settings(run)
        mask = joint_mask(spec, settings.joints)
        support = None
        if near_far is not None:
            dataset = OmegaConf.select(cfg, "env.kwargs.dataset", default=None)
            if not dataset or not Path(str(dataset)).is_dir():
                raise UserError(
                    f"delta_action.support needs the recording delta_action.run={run} was trained on, but its"
                    f" env.kwargs.dataset={dataset} is not a folder here"
                )
            segments, provenance = load_delta_dataset(str(dataset), spec.name)
            support = RecordingSupport.from_segments(segments, provenance["layout"], spec.default_pos_array)
        return cls(
            run,
            RslPolicy.load(model),
            spec.name,
            settings.scale,
            mask,
            settings.previous_action,
            support,
            near_far or (0.0, 1.0),
        )

    @property
    def gate_mean(self) -> float:
        """The support gate's mean over every env step so far (1.0 without a support)."""
        return self.gate_sum / self.gate_count if self.gate_count else 1.0

    def __call__(
        self,
        spec: RobotSpec,
        frame: SimFrame,
        action: np.ndarray,
        last_delta: np.ndarray,
        previous_action: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """(the robot action a + scale x mask x d, the delta d) for every env of the frame;
        previous_action is the policy's action of the step before (zeros after a reset). With a
        support, d is the model's output times the support gate (the delta applied, which the model
        reads back as its last delta)."""
        rows = np.arange(len(action))
        previous = previous_action if self.previous_action else None
        obs = delta_observation(spec, frame, rows, last_delta, action, previous)
        delta = delta_actions(self.policy, obs)
        if self.support is not None:
            distance = self.support.distance(frame_features(frame, spec.default_pos_array))
            gate = support_gate(distance, *self.near_far)
            delta = delta * gate[:, None]
            self.gate_sum += float(gate.sum())
            self.gate_count += len(gate)
        return apply_delta(action, delta, self.scale, self.mask), delta
