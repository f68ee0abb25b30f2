"""`python -m robolearn.export run=<run dir>`: turn a training run into an ONNX policy.

    python -m robolearn.export run=outputs/2026-11-26/10-00-00_ppo_Go2Velocity [checkpoint=final|best|latest] [out=...]
    python -m robolearn.export run=outputs/2026-11-26/10-00-00_sac_Pendulum-v1  # any env: ONNX + metadata.json
    python -m robolearn.export run=outputs/2026-12-06/10-00-00_offline_mopo_none  # a robolearn.offline run
    python -m robolearn.export reference=go2_stand       # rebuilds policies/reference/go2_stand
    python -m robolearn.export from=legged_gym policy=motion.pt config=g1.yaml robot=g1_29dof out=policies/g1_walk
    python -m robolearn.export from=isaaclab run=<Isaac Lab log dir> robot=go2 out=policies/go2_lab

Every run's deterministic policy (what stable-baselines3's predict(obs, deterministic=True) returns:
PPO's mean action clipped to the action bounds, SAC/TD3's tanh-squashed actor rescaled to them; for a
robolearn.offline run, what its evaluation runs: the SAC actor's tanh mean rescaled to the bounds, on
the raw observation) becomes policy.onnx, with the framework checkpoint under checkpoint/. The loaders
(_sb3_policy, _offline_policy) differ; everything after them is one path. What sits beside it depends
on the env:

- a robot task (its `unwrapped` env carries `robot_spec` (RobotSpec) and `proprio_terms`, the ObsTerms
  it builds with the robots package, as robolearn.envs.tasks.RobotTask does; its observation must be
  exactly those terms) gets contract.json (robolearn.deploy.artifact): the deploy runtime builds and
  normalises the observation from the contract and feeds the network the normalised vector;
- any other env gets metadata.json (GENERIC_FORMAT): env id, algorithm, observation and action spaces
  with their bounds, the normalisation statistics and how to run the network. VecNormalize's
  observation normalisation is baked into this graph, so it takes the env's raw observation.

Every export runs the ONNX network in onnxruntime beside the torch module on `check_samples` inputs
(and, for a run, beside stable-baselines3's own predict() or the offline loop's evaluation step) and
refuses to write one that disagrees.

`from=legged_gym` and `from=isaaclab` import a policy trained elsewhere (robolearn.isaac: Isaac Gym /
unitree_rl_gym TorchScript with its deploy yaml, an Isaac Lab rsl_rl run) into the same artifact,
checked step by step (recurrent state carried) against the original over `check_samples` observations.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import robolearn.resources
from robolearn.cli import hydra_verb, verb_help
from robolearn.deploy.artifact import (
    CHECKPOINT_DIR,
    CONTRACT_FILE,
    NETWORK_FILE,
    Normalization,
    PolicyArtifact,
    PolicyContract,
    write_contract,
)
from robolearn.deploy.config import RobotNode
from robolearn.deploy.motion import MOTION_FILE, MotionLibrary, library_from_references, write_motion
from robolearn.errors import UserError, require, require_extra
from robolearn.robots.observations import LOCOMOTION_TERMS, MOTION_TERMS, ObsTerm, observation_size
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec
from robolearn.utils.io import replace_dir

ONNX_OPSET = 17
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
# float32 networks: onnxruntime and torch agree to rounding, far inside this.
EXPORT_ATOL = 1e-5
# The velocity task's command ranges (robolearn.envs.tasks.velocity.DEFAULT_COMMAND_RANGES), used when
# a task does not say its own.
DEFAULT_COMMAND_RANGES = ((-1.0, 1.0), (-0.5, 0.5), (-1.0, 1.0))
CHECKPOINTS = ("final", "best", "latest")
# from=: where the policy comes from (run: a robolearn run directory, or reference=).
SOURCES = ("run", "legged_gym", "isaaclab")
# A non-robot run's export: policy.onnx + checkpoint/ + this file (no contract.json).
METADATA_FILE = "metadata.json"
GENERIC_FORMAT = "robolearn-onnx-policy"
GENERIC_FORMAT_VERSION = 1
NORMALIZATION_FORMULA = "clip((obs - mean) / sqrt(var + epsilon), -clip, clip)"


@dataclass
class ExportConfig:
    """Schema of configs/export.yaml."""

    run: str | None = None  # run directory to export
    checkpoint: str = "final"  # final | best | latest
    reference: str | None = None  # build a shipped reference artifact instead (go2_stand)
    out: str | None = None  # artifact folder; default <run>/policy, or policies/reference/<reference>
    check_samples: int = 256  # inputs on which onnxruntime must match torch
    seed: int = 0  # for the check inputs and the reference network's hidden weights
    overwrite: bool = True  # replace an existing artifact folder
    policy: str | None = None  # from=legged_gym: the TorchScript policy file
    config: str | None = None  # from=legged_gym: its unitree_rl_gym deploy yaml
    # from=legged_gym|isaaclab: the robolearn robot, configs/robot/<name>.yaml (go2, g1, g1_29dof)
    robot: RobotNode | None = None
    # from=isaaclab: the articulation's joint order (a list, or a file), when the importer's guess is wrong
    joint_names: Any = None
    # from=legged_gym|isaaclab: kp/kd for the joints the policy does not command (held at the default pose);
    # null keeps the source's (deploy_real's arm_waist_kps) or robolearn's gains
    hold_kp: float | None = None
    hold_kd: float | None = None
    hold_joints: str = ".*"  # the held joints hold_kp/hold_kd apply to (a regex, matched whole)


def _with_from_key(cls: type) -> Any:
    """cls plus the `from` key (null, run, legged_gym, isaaclab). Python refuses `from` as an identifier, so
    it is added through the annotations, without the generated __init__/__repr__/__eq__ that would spell
    it; OmegaConf reads only the fields, so a misspelt key or a wrong type still fails before any work."""
    namespace = {
        "__annotations__": {"from": "str | None"},
        "from": None,
        "__module__": cls.__module__,
        "__doc__": cls.__doc__,
    }
    return dataclass(init=False, repr=False, eq=False)(type(cls.__name__, (cls,), namespace))


ConfigStore.instance().store(name="export_schema", node=_with_from_key(ExportConfig))


def _torch() -> Any:
    return require("torch", "exporting a policy", "deploy")


def network_to_onnx(
    network: Any,
    input_shape: tuple[int, ...],
    state: Sequence[tuple[str, str, tuple[int, ...]]] = (),
) -> bytes:
    """The network traced to ONNX: inputs (batch, *input_shape) -> actions, with a dynamic batch axis.

    state lists a recurrent network's (input name, output name, shape) tensors: forward(obs, *state)
    -> (action, *state), each a graph input and output; such a graph keeps batch 1, since a state's
    batch axis is not its first and deploy runs one robot.
    """
    torch = _torch()
    buffer = io.BytesIO()
    dynamic = None if state else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (torch.zeros(1, *input_shape), *(torch.zeros(*shape) for _, _, shape in state)),
            buffer,
            input_names=[INPUT_NAME, *(i for i, _, _ in state)],
            output_names=[OUTPUT_NAME, *(o for _, o, _ in state)],
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return buffer.getvalue()


def _compare(
    onnx_bytes: bytes,
    network: Any,
    samples: np.ndarray,
    reference: Callable[[np.ndarray], np.ndarray] | None,
) -> tuple[np.ndarray, dict[str, float]]:
    """(onnxruntime's outputs on samples, largest absolute difference to torch and to reference)."""
    torch = _torch()
    ort = require("onnxruntime", "checking an exported policy", "deploy")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    onnx_out = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: samples})[0], dtype=np.float64)
    with torch.no_grad():
        torch_out = network(torch.as_tensor(samples)).double().numpy()
    errors = {"torch": float(np.max(np.abs(onnx_out - torch_out)))}
    if reference is not None:
        errors["reference"] = float(
            np.max(
                np.abs(onnx_out - np.asarray(reference(samples), dtype=np.float64).reshape(onnx_out.shape))
            )
        )
    return onnx_out, errors


def _input_spread(network: Any, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(centre, spread) of the export check's inputs: (0, 1) per value, or for a network that
    normalises its own input (rsl-rl-lib's EmpiricalNormalization as `normalizer`: agent=rsl_ppo) its
    running mean and std + eps, so the check's inputs normalise to N(0, 2) as they would without it
    (raw N(0, 2) inputs on a feature the policy only ever saw constant normalise to +-200: a region no
    observation reaches, where float32 sums of saturated units differ by more than the tolerance)."""
    norm = getattr(network, "normalizer", None)
    mean, std = getattr(norm, "_mean", None), getattr(norm, "_std", None)
    if mean is None or std is None:
        return np.zeros(size), np.ones(size)
    centre = mean.detach().double().numpy().reshape(-1)
    spread = std.detach().double().numpy().reshape(-1) + float(getattr(norm, "eps", 0.0))
    if centre.shape != (size,) or spread.shape != (size,):
        return np.zeros(size), np.ones(size)
    return centre, spread


def _refuse_disagreement(errors: Mapping[str, float], out: Path) -> None:
    for name, err in errors.items():
        if not err <= EXPORT_ATOL:
            raise UserError(
                f"onnxruntime disagrees with {name} by {err:.3g} (> {EXPORT_ATOL}); not writing {out}"
            )


def _write_folder(
    out: Path,
    onnx_bytes: bytes,
    checkpoint_files: Mapping[str, tuple[Path, str]],
    description: tuple[str, Callable[[Path], None]],
    extra: Sequence[tuple[str, Callable[[Path], None]]] = (),
) -> None:
    """Write network, checkpoint/, the description file (name, writer) and any extra files into a
    temporary folder beside out, then move it into place: a reader sees the old folder or the whole
    new one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / NETWORK_FILE).write_bytes(onnx_bytes)
        (tmp / CHECKPOINT_DIR).mkdir()
        for name, (source, _) in checkpoint_files.items():
            shutil.copyfile(source, tmp / CHECKPOINT_DIR / name)
        for name, write in (description, *extra):
            write(tmp / name)
        tmp.chmod(0o755)  # mkdtemp made it private; an artifact is shared data
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def export_policy(
    network: Any,
    contract: PolicyContract,
    out: Path,
    checkpoint_files: Mapping[str, tuple[Path, str]],
    reference: Callable[[np.ndarray], np.ndarray] | None = None,
    check_samples: int = 256,
    seed: int = 0,
    motion: MotionLibrary | None = None,
) -> PolicyArtifact:
    """Write policy.onnx + checkpoint/ + contract.json (+ motion.npz for a tracking policy, whose
    contract describes it) into out, after checking onnxruntime against torch.

    network maps a (B, input_size) float32 tensor to (B, num_joints) actions; checkpoint_files maps
    a file name to (source path, kind); reference, when given, is a second implementation (such as
    SB3's predict) that the ONNX outputs must match as well.
    """
    network = network.eval()
    rng = np.random.default_rng(seed)
    # Inputs spread over the normalised range and beyond, where clipping and saturation show up: in
    # the raw observation's units when the network normalises its input itself.
    centre, spread = _input_spread(network, contract.input_size)
    samples = (centre + spread * rng.standard_normal((check_samples, contract.input_size)) * 2.0).astype(
        np.float32
    )
    onnx_bytes = network_to_onnx(network, (contract.input_size,))
    onnx_out, errors = _compare(onnx_bytes, network, samples, reference)
    if onnx_out.shape != (check_samples, contract.robot.num_joints):
        raise UserError(
            f"the network outputs shape {onnx_out.shape[1:]}, the robot has {contract.robot.num_joints} joints"
        )
    _refuse_disagreement(errors, out)

    network_info = dict(contract.network)
    network_info.update(
        {
            "file": NETWORK_FILE,
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "input_size": contract.input_size,
            "output_size": contract.robot.num_joints,
            "opset": ONNX_OPSET,
            "check": {"samples": check_samples, "atol": EXPORT_ATOL, "max_abs_error": errors},
        }
    )
    checkpoint = tuple(
        {"file": f"{CHECKPOINT_DIR}/{name}", "kind": kind} for name, (_, kind) in checkpoint_files.items()
    )
    final = dataclasses.replace(contract, network=network_info, checkpoint=checkpoint)
    if (final.motion is None) != (motion is None):
        raise UserError("export_policy: give the motion library exactly when the contract has a motion entry")
    extra = () if motion is None else ((MOTION_FILE, lambda path: write_motion(path, motion)),)
    out = Path(out)
    _write_folder(
        out, onnx_bytes, checkpoint_files, (CONTRACT_FILE, lambda path: write_contract(path, final)), extra
    )
    return PolicyArtifact(out, final, motion)


def sb3_actor(model: Any) -> Any:
    """A torch module computing stable-baselines3's deterministic predict() on (already normalised) obs."""
    export_module = getattr(model, "export_module", None)
    if callable(export_module):
        # agent=rsl_ppo's RslPolicy: its actor (normaliser inside) with the same clipping as predict().
        return export_module()
    torch = _torch()
    from stable_baselines3.common.policies import ActorCriticPolicy

    policy = model.policy
    space = model.action_space
    low = torch.as_tensor(space.low, dtype=torch.float32)
    high = torch.as_tensor(space.high, dtype=torch.float32)

    class _Actor(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.policy = policy
            self.register_buffer("low", low)
            self.register_buffer("high", high)

        def forward(self, obs: Any) -> Any:
            if isinstance(self.policy, ActorCriticPolicy):
                # PPO: the Gaussian's mean, clipped to the action space (predict() does the same).
                features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
                latent = self.policy.mlp_extractor.forward_actor(features)  # type: ignore[arg-type]
                mean = self.policy.action_net(latent)
                if self.policy.squash_output:
                    return self.low + 0.5 * (torch.tanh(mean) + 1.0) * (self.high - self.low)
                return torch.maximum(torch.minimum(mean, self.high), self.low)
            # SAC / TD3: the actor squashes to [-1, 1]; predict() rescales to the action space.
            squashed = (
                self.policy.actor(obs, deterministic=True)
                if _takes_deterministic(self.policy.actor)
                else self.policy.actor(obs)
            )
            return self.low + 0.5 * (squashed + 1.0) * (self.high - self.low)

    return _Actor().eval()


@dataclass(frozen=True)
class OnnxExport:
    """A non-robot run's export: root holds policy.onnx, checkpoint/ and metadata.json (its content)."""

    root: Path
    metadata: dict[str, Any]

    @property
    def network_path(self) -> Path:
        return self.root / NETWORK_FILE


def is_robot_task(task: Any) -> bool:
    """Whether an unwrapped env claims to be a robot task (then it must satisfy task_contract_fields)."""
    return getattr(task, "robot_spec", None) is not None or getattr(task, "proprio_terms", None) is not None


def obs_normalizer(norm: Normalization, shape: tuple[int, ...]) -> Any:
    """A torch module applying VecNormalize's observation normalisation (NORMALIZATION_FORMULA)."""
    torch = _torch()
    mean = np.asarray(norm.mean, dtype=np.float64).reshape(shape)
    std = np.sqrt(np.asarray(norm.var, dtype=np.float64).reshape(shape) + norm.epsilon)

    class _Normalize(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
            self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
            self.clip = float(norm.clip)

        def forward(self, obs: Any) -> Any:
            return torch.clamp((obs - self.mean) / self.std, -self.clip, self.clip)

    return _Normalize().eval()


def _box(space: Any, what: str, env_id: str) -> dict[str, Any]:
    """A Box space as JSON: shape, and bounds with null for an unbounded side."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        raise UserError(
            f"{env_id}'s {what} space is {space}; export writes networks for Box (continuous) spaces only"
        )

    def bounds(values: np.ndarray) -> list[float | None]:
        return [
            float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).reshape(-1)
        ]

    return {"type": "Box", "shape": list(space.shape), "low": bounds(space.low), "high": bounds(space.high)}


def observation_samples(
    space: Any, norm: Normalization | None, count: int, rng: np.random.Generator
) -> np.ndarray:
    """Check inputs: uniform inside finite bounds; elsewhere spread 2 std around the normalisation's
    mean (or 2 around 0), reaching the clipping range."""
    shape = tuple(space.shape)
    low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), shape)
    center = np.zeros(shape) if norm is None else np.asarray(norm.mean).reshape(shape)
    scale = np.ones(shape) if norm is None else np.sqrt(np.asarray(norm.var).reshape(shape))
    spread = center + 2.0 * scale * rng.standard_normal((count, *shape))
    finite = np.isfinite(low) & np.isfinite(high)
    inside = rng.uniform(np.where(finite, low, 0.0), np.where(finite, high, 1.0), size=(count, *shape))
    return np.asarray(np.where(finite, inside, spread), dtype=np.float32)


def _usage(input_shape: tuple[int, ...]) -> str:
    shape = ", ".join(str(n) for n in input_shape)
    return (
        "import numpy as np, onnxruntime as ort; "
        f"session = ort.InferenceSession('{NETWORK_FILE}'); "
        f"action = session.run(['{OUTPUT_NAME}'], {{'{INPUT_NAME}': np.asarray(obs, np.float32).reshape(1, {shape})}})[0][0]"
    )


def export_generic(
    actor: Any,
    spaces: tuple[Any, Any],
    norm: Normalization | None,
    out: Path,
    checkpoint_files: Mapping[str, tuple[Path, str]],
    source: Mapping[str, Any],
    reference: tuple[str, Callable[[np.ndarray], np.ndarray]],
    action_doc: str,
    check_samples: int = 256,
    seed: int = 0,
) -> OnnxExport:
    """Write policy.onnx (the env's raw observation in, the deterministic action out, normalisation
    inside) + checkpoint/ + metadata.json, after checking onnxruntime against torch and reference.

    actor maps the (normalised, when norm is given) observation to the env action; spaces is
    (observation space, action space); reference is (label, the framework's own deterministic action
    on the raw observation), e.g. ("stable-baselines3 predict", ...).
    """
    torch = _torch()
    env_id = str(source.get("env_id", "?"))
    obs_space, action_space = spaces
    observation, action = _box(obs_space, "observation", env_id), _box(action_space, "action", env_id)
    shape = tuple(int(n) for n in obs_space.shape)
    network = actor if norm is None else torch.nn.Sequential(obs_normalizer(norm, shape), actor).eval()
    samples = observation_samples(obs_space, norm, check_samples, np.random.default_rng(seed))
    onnx_bytes = network_to_onnx(network, shape)
    label, reference_fn = reference
    onnx_out, errors = _compare(onnx_bytes, network, samples, reference_fn)
    if onnx_out.shape[1:] != tuple(action_space.shape):
        raise UserError(
            f"the network outputs shape {onnx_out.shape[1:]}, the action space is {action_space.shape}"
        )
    errors = {(label if k == "reference" else k): v for k, v in errors.items()}
    _refuse_disagreement(errors, out)
    metadata: dict[str, Any] = {
        "format": GENERIC_FORMAT,
        "format_version": GENERIC_FORMAT_VERSION,
        "robot_contract": False,
        "env_id": env_id,
        "algo": source.get("algo"),
        "network": {
            "file": NETWORK_FILE,
            "input": INPUT_NAME,
            "output": OUTPUT_NAME,
            "dtype": "float32",
            "input_shape": ["batch", *shape],
            "output_shape": ["batch", *action_space.shape],
            "opset": ONNX_OPSET,
            "check": {"samples": check_samples, "atol": EXPORT_ATOL, "max_abs_error": errors},
        },
        "observation_space": observation,
        "action_space": action,
        "normalization": None
        if norm is None
        else {
            "in_graph": True,
            "formula": NORMALIZATION_FORMULA,
            "mean": list(norm.mean),
            "var": list(norm.var),
            "epsilon": norm.epsilon,
            "clip": norm.clip,
        },
        "action": action_doc,
        "usage": _usage(shape),
        "checkpoint": [
            {"file": f"{CHECKPOINT_DIR}/{name}", "kind": kind} for name, (_, kind) in checkpoint_files.items()
        ],
        "source": dict(source),
    }

    def write(path: Path) -> None:
        path.write_text(json.dumps(metadata, indent=2, allow_nan=False) + "\n")

    out = Path(out)
    _write_folder(out, onnx_bytes, checkpoint_files, (METADATA_FILE, write))
    return OnnxExport(out, metadata)


def _takes_deterministic(actor: Any) -> bool:
    import inspect

    return "deterministic" in inspect.signature(actor.forward).parameters


def _task_extra_terms(task: Any) -> tuple[ObsTerm, ...]:
    """Contract terms for the values a task appends after its robot terms (RobotTask.extra_observation),
    in the same order, scale and noise; () for a task that appends none.

    VelocityTask with observe_base_lin_vel: the base's body-frame velocity x LIN_VEL_OBS_SCALE with
    U(-LIN_VEL_OBS_NOISE * obs_noise) m/s noise before the scale, clipped with the rest of the vector
    (OBS_CLIP): the base_lin_vel term, which the simulators' backends fill and DDS deploy refuses.
    """
    if not getattr(task, "observe_base_lin_vel", False):
        return ()
    from robolearn.envs.tasks.velocity import LIN_VEL_OBS_NOISE, LIN_VEL_OBS_SCALE

    obs_noise = float(getattr(getattr(task, "randomization", None), "obs_noise", 0.0))
    return (ObsTerm("base_lin_vel", scale=LIN_VEL_OBS_SCALE, noise=LIN_VEL_OBS_NOISE * obs_noise),)


def task_motion_library(task: Any) -> MotionLibrary | None:
    """The reference clips a tracking task's policy observes (its motion_* terms), for the artifact's
    motion.npz; None for a task without them. The anchor is the task's first tracked body."""
    if not any(t.name in MOTION_TERMS for t in getattr(task, "proprio_terms", ())):
        return None
    from robolearn.envs.tasks.tracking import TRACKED_BODIES

    return library_from_references(task.references, 0, TRACKED_BODIES[0])


def task_contract_fields(task: Any) -> dict[str, Any]:
    """robot, terms, obs_clip, history length, action_clip, command ranges, gait period and motion
    entry of a robot task env (its unwrapped env)."""
    return _task_contract(task)[0]


def _task_contract(task: Any) -> tuple[dict[str, Any], MotionLibrary | None]:
    """task_contract_fields and the tracking clips its motion entry describes (None without)."""
    spec = getattr(task, "robot_spec", None)
    terms = getattr(task, "proprio_terms", None)
    if not isinstance(spec, RobotSpec) or terms is None:
        raise UserError(
            f"the run's env ({type(task).__name__}) is not a robot task: export needs `robot_spec` and"
            " `proprio_terms` on the unwrapped env (robolearn.envs.tasks.RobotTask has them)"
        )
    terms = (*(ObsTerm.from_dict(t.to_dict()) for t in terms), *_task_extra_terms(task))
    obs_shape = getattr(getattr(task, "observation_space", None), "shape", None)
    history = int(getattr(task, "observation_history", 1))
    size = observation_size(spec, terms) * history
    if obs_shape is not None and tuple(obs_shape) != (size,):
        raise UserError(
            f"the env's observation has shape {tuple(obs_shape)} but its robot terms make ({size},)"
            f" ({history} frame(s)): task-specific observation values cannot be rebuilt on the robot from"
            " the contract"
        )
    from robolearn.envs.tasks.base import OBS_CLIP

    ranges = getattr(task, "command_ranges", None) or DEFAULT_COMMAND_RANGES
    action_clip = getattr(task, "action_clip", None)
    gait = getattr(task, "gait_period_s", None)
    library = task_motion_library(task)
    fields = {
        "motion": None if library is None else library.describe(),
        "robot": spec,
        "terms": terms,
        "obs_clip": float(OBS_CLIP),
        "history_length": history,
        "action_clip": None if action_clip is None else float(action_clip),
        "command_ranges": tuple((float(lo), float(hi)) for lo, hi in ranges),
        "gait_period_s": None if gait is None else float(gait),
    }
    return fields, library


def _model_folder(run: Any, which: str) -> Path:
    from robolearn.evaluate import model_folder

    if which not in CHECKPOINTS:
        raise UserError(f"checkpoint={which} is not allowed; choose one of {', '.join(CHECKPOINTS)}")
    return model_folder(run, which)


@dataclass
class RunPolicy:
    """A run's deterministic policy, loaded for export: what differs between training loops."""

    actor: Any  # torch module: the actor's input (normalised when norm is set) -> the env action
    norm: Normalization | None  # observation normalisation outside the actor; None: raw observation
    # The framework's own deterministic action on the actor's input (SB3's predict, the offline loop's
    # evaluation step), a second implementation the ONNX graph must match; with its label in the check.
    reference: Callable[[np.ndarray], np.ndarray]
    reference_label: str
    normalize: Callable[[np.ndarray], np.ndarray] | None  # the framework's normalisation of a raw obs
    action_doc: str  # what the output is (metadata.json's "action")
    files: dict[str, tuple[Path, str]]  # checkpoint/ contents: name -> (source path, kind)
    algo: str
    env_id: str
    spaces: tuple[Any, Any]  # (observation space, action space) of the env
    contract_fields: dict[str, Any] | None  # task_contract_fields of a robot task; None for any other env
    motion: MotionLibrary | None = None  # a tracking task's reference clips (task_motion_library)


def _env_facts(env: Any) -> tuple[tuple[Any, Any], dict[str, Any] | None, MotionLibrary | None]:
    """((observation space, action space), contract fields or None, a tracking task's clips or None)
    of an env, which is closed."""
    try:
        task = env.unwrapped
        fields, motion = _task_contract(task) if is_robot_task(task) else (None, None)
        return (env.observation_space, env.action_space), fields, motion
    finally:
        env.close()


def _rsl_policy_file(run: Any, checkpoint: str, scratch: Path) -> tuple[Path, str]:
    """(policy file RslPolicy.load reads, its kind) of an agent=rsl_ppo run.

    final/ and best/ hold model.zip, the actor payload alone (RslTrainer._save_policy). Its periodic
    checkpoints hold robolearn.runs.loop's state.pt only, the whole training state with that payload
    under state["policy"]; for checkpoint=latest the payload is written to scratch as a model.zip, so
    the artifact's checkpoint/ has the same small file whichever checkpoint it came from.
    """
    from robolearn.agents.rsl_ppo import POLICY_FORMAT
    from robolearn.runs.checkpoint import MODEL_FILE
    from robolearn.runs.loop import STATE_FILE

    if checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint={checkpoint} is not allowed; choose one of {', '.join(CHECKPOINTS)}")
    pointer = run.checkpoints / "latest.json"
    if checkpoint != "latest":
        path = (run.final if checkpoint == "final" else run.best) / MODEL_FILE
        if path.is_file():
            return path, "rsl-rl-lib actor (torch.save)"
        if checkpoint == "final" and pointer.is_file():
            raise UserError(f"{run.root} did not finish (no final/); use checkpoint=latest or resume it")
        raise UserError(f"{path} is missing; pick another checkpoint=({', '.join(CHECKPOINTS)})")
    if not pointer.is_file():
        raise UserError(f"{run.root} has no checkpoint yet; train longer or pick checkpoint=final|best")
    torch = _torch()
    try:
        name = str(json.loads(pointer.read_text(encoding="utf-8"))["name"])
        state_path = run.checkpoints / name / STATE_FILE
        payload = torch.load(state_path, map_location="cpu", weights_only=False)["state"]["policy"]
        if payload.get("format") != POLICY_FORMAT:
            raise ValueError(f"format {payload.get('format')!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, EOFError) as exc:
        raise UserError(
            f"{pointer.parent}: the newest checkpoint's actor cannot be read ({type(exc).__name__}: {exc});"
            " pick checkpoint=final|best"
        ) from None
    path = scratch / MODEL_FILE
    torch.save(payload, path)
    return path, f"rsl-rl-lib actor (torch.save) from {name}/{STATE_FILE}"


def _sb3_policy(run: Any, cfg: DictConfig, checkpoint: str, scratch: Path) -> RunPolicy:
    """A robolearn.train run's model (final, best or latest) and its VecNormalize statistics; scratch
    is a folder for files the export copies into checkpoint/ (an rsl_ppo actor out of state.pt)."""
    from robolearn.agents.factory import SB3_CLASSES
    from robolearn.envs import make_env
    from robolearn.runs.checkpoint import MODEL_FILE, VECNORM_FILE

    algo = str(OmegaConf.select(cfg, "agent.algo", default=""))
    cls = SB3_CLASSES.get(algo)
    if cls is None:
        raise UserError(
            f"{run.config}: agent.algo={algo or '?'} cannot be exported; known: {', '.join(SB3_CLASSES)}"
            " (and robolearn.offline runs)"
        )
    if algo == "rsl_ppo":
        model_path, kind = _rsl_policy_file(run, checkpoint, scratch)
    else:
        model_path, kind = _model_folder(run, checkpoint) / MODEL_FILE, f"stable-baselines3 {algo}"
    folder = model_path.parent
    _, fields, motion = _env_facts(make_env(cfg.env))
    try:
        model = cls.load(model_path, device="cpu")
    except Exception as exc:  # SB3 raises many kinds for a damaged zip
        raise UserError(f"{model_path} cannot be loaded ({type(exc).__name__}: {exc})") from None
    norm = None
    normalize: Callable[[np.ndarray], np.ndarray] | None = None
    files: dict[str, tuple[Path, str]] = {MODEL_FILE: (model_path, kind)}
    if algo != "rsl_ppo" and (folder / VECNORM_FILE).is_file():
        with open(folder / VECNORM_FILE, "rb") as fh:
            vecnorm = pickle.load(fh)
        if getattr(vecnorm, "norm_obs", False):
            rms = vecnorm.obs_rms
            norm = Normalization(
                tuple(float(v) for v in np.asarray(rms.mean).reshape(-1)),
                tuple(float(v) for v in np.asarray(rms.var).reshape(-1)),
                float(vecnorm.epsilon),
                float(vecnorm.clip_obs),
            )
            normalize = vecnorm.normalize_obs
        files[VECNORM_FILE] = (folder / VECNORM_FILE, "stable-baselines3 VecNormalize")

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, deterministic=True)[0])

    return RunPolicy(
        actor=sb3_actor(model),
        norm=norm,
        reference=predict,
        reference_label="stable-baselines3 predict",
        normalize=normalize,
        action_doc="deterministic: stable-baselines3's predict(obs, deterministic=True), inside the action bounds",
        files=files,
        algo=algo,
        env_id=str(cfg.env.id),
        spaces=(model.observation_space, model.action_space),
        contract_fields=fields,
        motion=motion,
    )


def is_offline_run(cfg: DictConfig) -> bool:
    """Whether a run's config is robolearn.offline's (a dataset and algo.name, no agent)."""
    return (
        OmegaConf.select(cfg, "agent", default=None) is None
        and OmegaConf.select(cfg, "dataset", default=None) is not None
        and OmegaConf.select(cfg, "algo.name", default=None) is not None
    )


def _offline_policy(run: Any, cfg: DictConfig, checkpoint: str) -> RunPolicy:
    """A robolearn.offline run's SAC actor (policy.pt): raw observation in, no normalisation."""
    import gymnasium as gym

    import robolearn.envs  # noqa: F401 - registers the robolearn/<Name>-v<N> ids a dataset may name
    from robolearn.mbrl.offline.loop import POLICY_FILE, load_policy

    if checkpoint != "final":
        raise UserError(
            f"checkpoint={checkpoint}: a robolearn.offline run keeps only its final policy ({POLICY_FILE});"
            " use checkpoint=final"
        )
    if not (run.root / POLICY_FILE).is_file():
        raise UserError(
            f"{run.root} has no {POLICY_FILE}: the offline run did not finish; resume it with"
            f" python -m robolearn.offline resume={run.root}"
        )
    policy, facts = load_policy(run.root)
    env_id, env_kwargs = str(facts["env_id"]), dict(facts.get("env_kwargs") or {})
    try:
        env = gym.make(env_id, **env_kwargs)
    except gym.error.Error as exc:
        raise UserError(f"{run.root / POLICY_FILE}: cannot make its env {env_id!r} ({exc})") from None
    spaces, fields, motion = _env_facts(env)
    torch = _torch()
    low = np.asarray(facts["action_low"], dtype=np.float64)
    high = np.asarray(facts["action_high"], dtype=np.float64)

    def evaluation_action(x: np.ndarray) -> np.ndarray:
        # OfflineLoop.evaluate's step: the actor's deterministic [-1, 1] action scaled to the box.
        with torch.no_grad():
            a = policy.actor(torch.as_tensor(x, dtype=torch.float32), deterministic=True)[0].double().numpy()
        return low + (a + 1.0) * 0.5 * (high - low)

    return RunPolicy(
        actor=policy,
        norm=None,
        reference=evaluation_action,
        reference_label="robolearn.offline evaluation",
        normalize=None,
        action_doc="deterministic: tanh of the SAC actor's mean scaled to the action bounds, as robolearn.offline evaluates",
        files={
            POLICY_FILE: (run.root / POLICY_FILE, "robolearn.offline SAC actor + action box (torch.save)")
        },
        algo=str(OmegaConf.select(cfg, "method.name", default=None) or cfg.algo.name),
        env_id=env_id,
        spaces=spaces,
        contract_fields=fields,
        motion=motion,
    )


def export_run(
    run_path: str | Path,
    out: str | Path | None = None,
    checkpoint: str = "final",
    check_samples: int = 256,
    seed: int = 0,
) -> PolicyArtifact | OnnxExport:
    """Export a run directory's policy (robolearn.train: final, best or latest; robolearn.offline:
    final): a robot task's to an artifact folder with contract.json, any other env's to policy.onnx +
    metadata.json."""
    from robolearn.runs.layout import existing_run_dir

    run = existing_run_dir(run_path)
    cfg = OmegaConf.load(run.config)
    assert isinstance(cfg, DictConfig)
    with tempfile.TemporaryDirectory(prefix="robolearn-export-") as scratch:
        loaded = (
            _offline_policy(run, cfg, checkpoint)
            if is_offline_run(cfg)
            else _sb3_policy(run, cfg, checkpoint, Path(scratch))
        )
        return _export_loaded(run, loaded, out, checkpoint, check_samples, seed)


def _export_loaded(
    run: Any, loaded: RunPolicy, out: str | Path | None, checkpoint: str, check_samples: int, seed: int
) -> PolicyArtifact | OnnxExport:
    """export_run's second half: the loaded policy to an artifact (robot task) or ONNX + metadata."""
    import robolearn

    source = {
        "kind": "run",
        "run": str(run.root.resolve()),
        "checkpoint": checkpoint,
        "env_id": loaded.env_id,
        "algo": loaded.algo,
        "command": "python -m robolearn.export " + " ".join(sys.argv[1:]),
        "robolearn_version": getattr(robolearn, "__version__", "unknown"),
        "torch_version": str(_torch().__version__),
    }
    target = Path(out) if out is not None else run.root / "policy"
    if loaded.contract_fields is None:
        normalize, reference = loaded.normalize, loaded.reference

        def reference_raw(x: np.ndarray) -> np.ndarray:
            return reference(normalize(x) if normalize is not None else x)

        return export_generic(
            loaded.actor,
            loaded.spaces,
            loaded.norm,
            target,
            loaded.files,
            source,
            (loaded.reference_label, reference_raw),
            loaded.action_doc,
            check_samples,
            seed,
        )
    contract = PolicyContract(
        normalization=loaded.norm,
        network={},
        checkpoint=(),
        source=source,
        **loaded.contract_fields,
    )
    return export_policy(
        loaded.actor,
        contract,
        target,
        loaded.files,
        reference=loaded.reference,
        check_samples=check_samples,
        seed=seed,
        motion=loaded.motion,
    )


# --- Reference artifacts ----------------------------------------------------------------------------
REFERENCES = ("go2_stand",)


def reference_network(spec: RobotSpec, input_size: int, seed: int, hidden: int = 16) -> Any:
    """A tiny MLP whose output layer is zero: every input gives action 0, i.e. hold the default pose."""
    torch = _torch()
    gen = torch.Generator().manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(input_size, hidden), torch.nn.ELU(), torch.nn.Linear(hidden, spec.num_joints)
    )
    with torch.no_grad():
        first = net[0]
        first.weight.copy_(torch.randn(first.weight.shape, generator=gen) * (1.0 / input_size**0.5))
        first.bias.zero_()
        # A real hidden layer feeding a zero output layer: the same graph a trained policy has.
        net[2].weight.zero_()
        net[2].bias.zero_()
    return net.eval()


def build_reference(
    name: str, out: str | Path | None = None, check_samples: int = 256, seed: int = 0
) -> PolicyArtifact:
    """Build a shipped reference artifact through export_policy (the path a trained run takes)."""
    if name not in REFERENCES:
        raise UserError(f"reference={name} is unknown; references: {', '.join(REFERENCES)}")
    torch = _torch()
    spec = get_robot_spec("go2")
    from robolearn.envs.tasks.base import OBS_CLIP

    contract = PolicyContract(
        robot=spec,
        terms=LOCOMOTION_TERMS,
        obs_clip=float(OBS_CLIP),
        history_length=1,
        normalization=None,
        action_clip=5.0,  # the velocity task's action clip
        command_ranges=DEFAULT_COMMAND_RANGES,
        network={},
        checkpoint=(),
        source={
            "kind": "reference",
            "reference": name,
            "description": "standing policy: a 45-16-12 MLP with a zero output layer (action 0 = default pose)",
            "command": f"python -m robolearn.export reference={name}",
            "seed": seed,
            "torch_version": str(torch.__version__),
        },
    )
    network = reference_network(spec, contract.input_size, seed)
    target = Path(out) if out is not None else robolearn.resources.policies_dir() / "reference" / name
    with tempfile.TemporaryDirectory() as tmp:
        state_path = Path(tmp) / "policy.pt"
        torch.save(network.state_dict(), state_path)
        files = {
            "policy.pt": (state_path, "torch state_dict of Sequential(Linear(45,16), ELU, Linear(16,12))")
        }
        return export_policy(network, contract, target, files, check_samples=check_samples, seed=seed)


def _source(cfg: DictConfig) -> str:
    """The from= value: run (a robolearn run or a reference), legged_gym or isaaclab."""
    value = cfg.get("from")
    if value is None:
        return "run"
    if value not in SOURCES:
        raise UserError(f"from={value} is unknown; choose one of {', '.join(SOURCES)}")
    return str(value)


def _robot_name(cfg: DictConfig) -> str:
    """robot=<name> selects configs/robot/<name>.yaml (the group deploy composes too); its name."""
    return str(cfg.robot.name)


def _validate_import(cfg: DictConfig, source: str) -> None:
    """One-line errors for from=legged_gym|isaaclab arguments, before torch or any file loads."""
    if cfg.reference is not None:
        raise UserError(
            f"reference= builds a robolearn reference policy; it does not combine with from={source}"
        )
    needed = ("policy", "config", "robot", "out") if source == "legged_gym" else ("run", "robot", "out")
    example = (
        "from=legged_gym policy=<motion.pt> config=<deploy yaml> robot=<go2|g1|g1_29dof> out=<folder>"
        if source == "legged_gym"
        else "from=isaaclab run=<Isaac Lab log dir> robot=<go2|g1|g1_29dof> out=<folder>"
    )
    for key in needed:
        if cfg.get(key) is None:
            raise UserError(f"from={source} needs {key}=; usage: python -m robolearn.export {example}")
    get_robot_spec(_robot_name(cfg))  # unknown robot: one line listing the choices
    for key in ("hold_kp", "hold_kd"):
        value = cfg.get(key)
        if value is not None and not (math.isfinite(float(value)) and float(value) >= 0):
            raise UserError(f"{key}={value} is not allowed; pass a gain >= 0 (or leave it null)")
    try:
        re.compile(str(cfg.hold_joints))
    except re.error as exc:
        raise UserError(f"hold_joints={cfg.hold_joints} is not a regular expression ({exc})") from None
    if cfg.get("joint_names") is not None and source != "isaaclab":
        raise UserError("joint_names= gives an Isaac Lab articulation's joint order; it needs from=isaaclab")
    if source == "legged_gym":
        if cfg.run is not None:
            raise UserError("from=legged_gym reads policy= and config=, not run=; drop run=")
        for key in ("policy", "config"):
            if not Path(str(cfg[key])).expanduser().is_file():
                raise UserError(
                    f"{key}={cfg[key]} does not exist; pass the file unitree_rl_gym's deploy uses"
                )
    else:
        if cfg.policy is not None or cfg.config is not None:
            raise UserError(
                "from=isaaclab reads run= (its params/ and exported/ folders); drop policy= and config="
            )
        if not Path(str(cfg.run)).expanduser().is_dir():
            raise UserError(
                f"run={cfg.run} is not a folder; pass the Isaac Lab log directory (logs/rsl_rl/<task>/<time>)"
            )


def validate_export_config(cfg: DictConfig) -> None:
    """One-line errors for bad export arguments, before Hydra starts and before any model loads."""
    source = _source(cfg)
    if cfg.check_samples < 1:
        raise UserError(f"check_samples={cfg.check_samples} is out of range; use an integer >= 1")
    if cfg.out is not None and Path(cfg.out).exists() and not cfg.overwrite:
        raise UserError(f"out={cfg.out} exists; pass overwrite=true to replace it")
    if source != "run":
        _validate_import(cfg, source)
        require_extra("importing a policy", "onnx", "onnxruntime")
        return
    if cfg.policy is not None or cfg.config is not None or cfg.robot is not None:
        raise UserError(
            "policy=, config= and robot= import a policy trained elsewhere: add from=legged_gym (or from=isaaclab with run=)"
        )
    if (cfg.run is None) == (cfg.reference is None):
        raise UserError(
            "pass exactly one of run=<run dir> or reference=<name> (references: "
            + ", ".join(REFERENCES)
            + "), or from=legged_gym|isaaclab"
        )
    if cfg.run is not None and cfg.checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint={cfg.checkpoint} is not allowed; choose one of {', '.join(CHECKPOINTS)}")
    # Before any model loads: torch.onnx writes the graph with onnx, onnxruntime checks it.
    require_extra("exporting a policy", "onnx", "onnxruntime")


def _with_held_gains(imported: Any, kp: float | None, kd: float | None, pattern: str = ".*") -> Any:
    """hold_kp/hold_kd: the gains of every joint outside the policy's, as kp/kd overrides.

    Isaac Gym's G1 leg policies were trained with the torso welded to the pelvis; on a robot whose waist
    is a joint, the PD holding it decides whether the policy still walks (docs/isaac.md, sim2sim).
    """
    if kp is None and kd is None:
        return imported
    spec = get_robot_spec(imported.robot)
    free = [name for name in spec.joint_names if name not in set(imported.policy_joints)]
    held = [name for name in free if re.fullmatch(pattern, name)]
    if not held:
        raise UserError(
            f"hold_joints={pattern} matches none of the joints the policy does not command ({', '.join(free) or 'none'})"
        )
    overrides = {field: dict(values) for field, values in imported.overrides.items()}
    for field, value in (("kp", kp), ("kd", kd)):
        if value is not None:
            overrides.setdefault(field, {}).update({name: float(value) for name in held})
    source = {**imported.source, "held_gains": {"joints": held, "kp": kp, "kd": kd}}
    return dataclasses.replace(imported, overrides=overrides, source=source)


def import_policy(cfg: DictConfig) -> PolicyArtifact:
    """from=legged_gym|isaaclab: translate the outside policy and write its artifact (robolearn.isaac)."""
    from robolearn.isaac.artifact import write_imported_artifact

    source = _source(cfg)
    if source == "legged_gym":
        from robolearn.isaac.legged_gym import import_legged_gym

        imported = import_legged_gym(
            Path(str(cfg.policy)).expanduser(), Path(str(cfg.config)).expanduser(), _robot_name(cfg)
        )
    else:
        import importlib

        # Looked up by name: the Isaac Lab importer loads only when asked for.
        module = importlib.import_module("robolearn.isaac.isaaclab")
        import_isaaclab = getattr(module, "import_isaaclab", None)
        if import_isaaclab is None:
            raise UserError(
                "from=isaaclab is not available in this robolearn (robolearn.isaac.isaaclab has no importer)"
            )
        # checkpoint= keeps its run-directory default (final); for an Isaac Lab run it names a file.
        checkpoint = None if cfg.checkpoint == "final" else str(cfg.checkpoint)
        names = cfg.get("joint_names")
        if names is not None:
            names = (
                [str(n) for n in names] if OmegaConf.is_list(names) else str(Path(str(names)).expanduser())
            )
        imported = import_isaaclab(
            Path(str(cfg.run)).expanduser(), _robot_name(cfg), checkpoint, joint_names=names
        )
    imported = _with_held_gains(imported, cfg.get("hold_kp"), cfg.get("hold_kd"), str(cfg.hold_joints))
    imported = dataclasses.replace(
        imported,
        source={**imported.source, "command": "python -m robolearn.export " + " ".join(sys.argv[1:])},
    )
    return write_imported_artifact(imported, Path(str(cfg.out)).expanduser(), cfg.check_samples, cfg.seed)


def run_export(cfg: DictConfig) -> PolicyArtifact | OnnxExport:
    """Execute one export from a composed config."""
    validate_export_config(cfg)
    if _source(cfg) != "run":
        return import_policy(cfg)
    if cfg.reference is not None:
        return build_reference(str(cfg.reference), cfg.out, cfg.check_samples, cfg.seed)
    return export_run(str(cfg.run), cfg.out, str(cfg.checkpoint), cfg.check_samples, cfg.seed)


def _export(cfg: DictConfig) -> None:
    exported = run_export(cfg)
    if isinstance(exported, OnnxExport):
        meta = exported.metadata
        check = meta["network"]["check"]
        errors = ", ".join(f"{k} {v:.2g}" for k, v in check["max_abs_error"].items())
        inputs = tuple(meta["observation_space"]["shape"])
        actions = tuple(meta["action_space"]["shape"])
        # rsl_ppo's empirical normaliser is a layer of its actor, so it is in the graph as well.
        in_graph = meta["normalization"] or meta["algo"] == "rsl_ppo"
        print(
            f"exported {meta['env_id']} {meta['algo']} policy to {exported.root} ({NETWORK_FILE} + {METADATA_FILE};"
            f" obs {inputs} -> action {actions}, normalisation {'in the graph' if in_graph else 'none'};"
            f" not a robot task, so no contract.json); onnxruntime vs {errors} on {check['samples']} inputs"
        )
        return
    check = exported.contract.network["check"]
    errors = ", ".join(f"{k} {v:.2g}" for k, v in check["max_abs_error"].items())
    if "steps" in check:  # an imported policy (robolearn.isaac)
        contract = exported.contract
        state = contract.network.get("state") or []
        overrides = list(getattr(contract, "robot_overrides", ()))
        print(
            f"imported {contract.source.get('importer')} policy for {contract.robot.name} to {exported.root}"
            f" ({contract.input_size} inputs, {contract.network['output_size']} of {contract.robot.num_joints} joints"
            f"{', recurrent state ' + ' + '.join(str(tuple(s['shape'])) for s in state) if state else ''};"
            f" overrides: {', '.join(overrides) or 'none'}); onnxruntime vs {errors} over {check['steps']} sequential steps"
        )
        return
    print(
        f"exported {exported.contract.robot.name} policy to {exported.root} ({exported.contract.input_size} inputs,"
        f" {exported.contract.robot.num_joints} actions); onnxruntime vs {errors} on {check['samples']} inputs"
    )


HELP = verb_help(
    "export",
    "run=<run dir> | from=legged_gym policy=<.pt> config=<yaml> robot=<name> out=<folder> [key=value ...]",
    "Turn a training run's deterministic policy into policy.onnx (with the stable-baselines3 checkpoint\n"
    "under checkpoint/), checked against onnxruntime and SB3's predict() before anything is written.\n"
    "A robolearn.offline run (MOPO/MOBILE) exports its final policy.pt the same way.\n"
    "A robot task (Go2Velocity, G1Velocity, ...) also gets contract.json, which robolearn.deploy reads;\n"
    "any other env (Pendulum, Hopper, ...) gets metadata.json instead (spaces, bounds, normalisation,\n"
    "how to run it), with VecNormalize's observation normalisation baked into the graph. See docs/export.md.\n"
    "from=legged_gym / from=isaaclab import a policy trained in Isaac Gym (unitree_rl_gym's TorchScript +\n"
    "deploy yaml) or Isaac Lab (an rsl_rl log directory) into the same artifact: joint order, gains,\n"
    "observation layout and recurrent state translated, checked step by step. See docs/isaac.md.",
    [
        (
            "run",
            "the run directory robolearn.train or robolearn.offline wrote (from=isaaclab: Isaac Lab's log dir)",
        ),
        (
            "checkpoint",
            "final | best | latest (default: final; a robolearn.offline run has final only;"
            " from=isaaclab: a model_<it>.pt or policy file in the run)",
        ),
        ("out", "output folder (default: <run>/policy, or policies/reference/<reference>)"),
        ("reference", "instead of run=: rebuild a shipped reference artifact (go2_stand)"),
        (
            "check_samples",
            "inputs on which onnxruntime must match torch and SB3 (default: 256; imports: sequential steps)",
        ),
        ("seed", "seed of the check inputs (default: 0)"),
        ("overwrite", "replace an existing out folder (default: true)"),
        ("from", "legged_gym | isaaclab: import a policy trained elsewhere (default: a robolearn run)"),
        (
            "policy",
            "from=legged_gym: the TorchScript policy (legged_gym export_policy_as_jit, e.g. motion.pt)",
        ),
        ("config", "from=legged_gym: its unitree_rl_gym deploy yaml (deploy_mujoco or deploy_real configs/)"),
        ("robot", "from=legged_gym|isaaclab: the robolearn robot it drives (go2, g1, g1_29dof)"),
        (
            "joint_names",
            "from=isaaclab: the articulation's joint order, a list or a file (default: deploy.yaml, else breadth-first)",
        ),
        (
            "hold_kp",
            "from=legged_gym|isaaclab: kp of the joints the policy does not command (default: source's)",
        ),
        ("hold_kd", "... and their kd (a G1 leg policy needs a stiff waist: docs/isaac.md)"),
        ("hold_joints", "which of those joints hold_kp/hold_kd set, a regex (default: .*; e.g. 'waist_.*')"),
    ],
    [
        "python -m robolearn.export run=outputs/2026-11-26/10-00-00_sac_Pendulum-v1",
        "python -m robolearn.export run=<Go2 run dir> checkpoint=best out=policies/my_go2",
        "python -m robolearn.export reference=go2_stand",
        "python -m robolearn.export from=legged_gym policy=motion.pt config=g1.yaml robot=g1_29dof out=policies/g1_walk",
        "python -m robolearn.export from=isaaclab run=logs/rsl_rl/go2_flat/2026-12-01_10-00-00 robot=go2 out=policies/go2",
    ],
)

# Console entry point (robolearn-export).
main = hydra_verb("export", _export, validate_export_config, help_text=HELP)

if __name__ == "__main__":
    main()
