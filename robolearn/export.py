"""`python -m robolearn.export run=<run dir>`: turn a training run into a policy artifact.

    python -m robolearn.export run=outputs/2026-11-26/10-00-00_ppo_Go2Velocity [checkpoint=final|best|latest] [out=...]
    python -m robolearn.export reference=go2_stand       # rebuilds policies/reference/go2_stand

The artifact (robolearn.deploy.artifact) holds policy.onnx, the framework checkpoint under
checkpoint/, and contract.json. A run's env must be a robot task: its `unwrapped` env carries
`robot_spec` (RobotSpec) and `proprio_terms` (the ObsTerms it builds with the robots package), as
robolearn.envs.tasks.RobotTask does; its observation must be exactly those terms. Every export runs
the ONNX network in onnxruntime beside the torch module on `check_samples` inputs (and, for a run,
beside stable-baselines3's own predict()) and refuses to write an artifact that disagrees.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import robolearn.resources
from robolearn.cli import hydra_verb
from robolearn.deploy.artifact import (
    CHECKPOINT_DIR,
    CONTRACT_FILE,
    NETWORK_FILE,
    Normalization,
    PolicyArtifact,
    PolicyContract,
    write_contract,
)
from robolearn.errors import UserError, require
from robolearn.robots.observations import LOCOMOTION_TERMS, ObsTerm, observation_size
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


ConfigStore.instance().store(name="export_schema", node=ExportConfig)


def _torch() -> Any:
    return require("torch", "exporting a policy", "deploy")


def export_policy(
    network: Any,
    contract: PolicyContract,
    out: Path,
    checkpoint_files: Mapping[str, tuple[Path, str]],
    reference: Callable[[np.ndarray], np.ndarray] | None = None,
    check_samples: int = 256,
    seed: int = 0,
) -> PolicyArtifact:
    """Write policy.onnx + checkpoint/ + contract.json into out, after checking onnxruntime against torch.

    network maps a (B, input_size) float32 tensor to (B, num_joints) actions; checkpoint_files maps
    a file name to (source path, kind); reference, when given, is a second implementation (such as
    SB3's predict) that the ONNX outputs must match as well.
    """
    torch = _torch()
    ort = require("onnxruntime", "checking an exported policy", "deploy")
    network = network.eval()
    rng = np.random.default_rng(seed)
    # Inputs spread over the normalised range and beyond, where clipping and saturation show up.
    samples = (rng.standard_normal((check_samples, contract.input_size)) * 2.0).astype(np.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (torch.zeros(1, contract.input_size),),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    onnx_bytes = buffer.getvalue()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    onnx_out = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: samples})[0], dtype=np.float64)
    with torch.no_grad():
        torch_out = network(torch.as_tensor(samples)).double().numpy()
    errors = {"torch": float(np.max(np.abs(onnx_out - torch_out)))}
    if reference is not None:
        errors["reference"] = float(
            np.max(np.abs(onnx_out - np.asarray(reference(samples), dtype=np.float64)))
        )
    if onnx_out.shape != (check_samples, contract.robot.num_joints):
        raise UserError(
            f"the network outputs shape {onnx_out.shape[1:]}, the robot has {contract.robot.num_joints} joints"
        )
    for name, err in errors.items():
        if not err <= EXPORT_ATOL:
            raise UserError(
                f"onnxruntime disagrees with {name} by {err:.3g} (> {EXPORT_ATOL}); not writing {out}"
            )

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

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / NETWORK_FILE).write_bytes(onnx_bytes)
        (tmp / CHECKPOINT_DIR).mkdir()
        for name, (source, _) in checkpoint_files.items():
            shutil.copyfile(source, tmp / CHECKPOINT_DIR / name)
        write_contract(tmp / CONTRACT_FILE, final)
        tmp.chmod(0o755)  # mkdtemp made it private; an artifact is shared data
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return PolicyArtifact(out, final)


def sb3_actor(model: Any) -> Any:
    """A torch module computing stable-baselines3's deterministic predict() on (already normalised) obs."""
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


def _takes_deterministic(actor: Any) -> bool:
    import inspect

    return "deterministic" in inspect.signature(actor.forward).parameters


def task_contract_fields(task: Any) -> dict[str, Any]:
    """robot, terms, obs_clip, action_clip, command ranges and gait period of a robot task env (its
    unwrapped env)."""
    spec = getattr(task, "robot_spec", None)
    terms = getattr(task, "proprio_terms", None)
    if not isinstance(spec, RobotSpec) or terms is None:
        raise UserError(
            f"the run's env ({type(task).__name__}) is not a robot task: export needs `robot_spec` and"
            " `proprio_terms` on the unwrapped env (robolearn.envs.tasks.RobotTask has them)"
        )
    terms = tuple(ObsTerm.from_dict(t.to_dict()) for t in terms)
    obs_shape = getattr(getattr(task, "observation_space", None), "shape", None)
    size = observation_size(spec, terms)
    if obs_shape is not None and tuple(obs_shape) != (size,):
        raise UserError(
            f"the env's observation has shape {tuple(obs_shape)} but its robot terms make ({size},): task-specific"
            " observation values cannot be rebuilt on the robot from the contract"
        )
    from robolearn.envs.tasks.base import OBS_CLIP

    ranges = getattr(task, "command_ranges", None) or DEFAULT_COMMAND_RANGES
    action_clip = getattr(task, "action_clip", None)
    gait = getattr(task, "gait_period_s", None)
    return {
        "robot": spec,
        "terms": terms,
        "obs_clip": float(OBS_CLIP),
        "action_clip": None if action_clip is None else float(action_clip),
        "command_ranges": tuple((float(lo), float(hi)) for lo, hi in ranges),
        "gait_period_s": None if gait is None else float(gait),
    }


def _model_folder(run: Any, which: str) -> Path:
    from robolearn.evaluate import model_folder

    if which not in CHECKPOINTS:
        raise UserError(f"checkpoint={which} is not allowed; choose one of {', '.join(CHECKPOINTS)}")
    return model_folder(run, which)


def export_run(
    run_path: str | Path,
    out: str | Path | None = None,
    checkpoint: str = "final",
    check_samples: int = 256,
    seed: int = 0,
) -> PolicyArtifact:
    """Export a run directory's model (final, best or latest) to an artifact folder."""
    from robolearn.agents.factory import SB3_CLASSES
    from robolearn.envs import make_env
    from robolearn.runs.checkpoint import MODEL_FILE, VECNORM_FILE
    from robolearn.runs.layout import existing_run_dir

    run = existing_run_dir(run_path)
    cfg = OmegaConf.load(run.config)
    assert isinstance(cfg, DictConfig)
    algo = str(OmegaConf.select(cfg, "agent.algo", default=""))
    cls = SB3_CLASSES.get(algo)
    if cls is None:
        raise UserError(
            f"{run.config}: agent.algo={algo or '?'} cannot be exported; known: {', '.join(SB3_CLASSES)}"
        )
    folder = _model_folder(run, checkpoint)
    env = make_env(cfg.env)
    try:
        fields = task_contract_fields(env.unwrapped)
    finally:
        env.close()
    try:
        model = cls.load(folder / MODEL_FILE, device="cpu")
    except Exception as exc:  # SB3 raises many kinds for a damaged zip
        raise UserError(f"{folder / MODEL_FILE} cannot be loaded ({type(exc).__name__}: {exc})") from None
    norm = None
    files: dict[str, tuple[Path, str]] = {MODEL_FILE: (folder / MODEL_FILE, f"stable-baselines3 {algo}")}
    if (folder / VECNORM_FILE).is_file():
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
        files[VECNORM_FILE] = (folder / VECNORM_FILE, "stable-baselines3 VecNormalize")
    import robolearn

    contract = PolicyContract(
        history_length=1,
        normalization=norm,
        network={},
        checkpoint=(),
        source={
            "kind": "run",
            "run": str(run.root.resolve()),
            "checkpoint": checkpoint,
            "env_id": str(cfg.env.id),
            "algo": algo,
            "command": "python -m robolearn.export " + " ".join(sys.argv[1:]),
            "robolearn_version": getattr(robolearn, "__version__", "unknown"),
            "torch_version": str(_torch().__version__),
        },
        **fields,
    )

    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(x, deterministic=True)[0])

    target = Path(out) if out is not None else run.root / "policy"
    return export_policy(
        sb3_actor(model), contract, target, files, reference=predict, check_samples=check_samples, seed=seed
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


def run_export(cfg: DictConfig) -> PolicyArtifact:
    """Execute one export from a composed config."""
    if (cfg.run is None) == (cfg.reference is None):
        raise UserError(
            "pass exactly one of run=<run dir> or reference=<name> (references: "
            + ", ".join(REFERENCES)
            + ")"
        )
    if cfg.check_samples < 1:
        raise UserError(f"check_samples={cfg.check_samples} is out of range; use an integer >= 1")
    if cfg.out is not None and Path(cfg.out).exists() and not cfg.overwrite:
        raise UserError(f"out={cfg.out} exists; pass overwrite=true to replace it")
    if cfg.reference is not None:
        return build_reference(str(cfg.reference), cfg.out, cfg.check_samples, cfg.seed)
    return export_run(str(cfg.run), cfg.out, str(cfg.checkpoint), cfg.check_samples, cfg.seed)


def _export(cfg: DictConfig) -> None:
    artifact = run_export(cfg)
    check = artifact.contract.network["check"]
    errors = ", ".join(f"{k} {v:.2g}" for k, v in check["max_abs_error"].items())
    print(
        f"exported {artifact.contract.robot.name} policy to {artifact.root} ({artifact.contract.input_size} inputs,"
        f" {artifact.contract.robot.num_joints} actions); onnxruntime vs {errors} on {check['samples']} inputs"
    )


# Console entry point (robolearn-export).
main = hydra_verb("export", _export)

if __name__ == "__main__":
    main()
