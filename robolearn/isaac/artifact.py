"""What every importer shares: ImportedPolicy (an outside policy translated into robolearn's terms)
and write_imported_artifact, which turns it into a policy artifact (contract 3) that deploy and
sim2sim read like any exported run.

An importer (robolearn.isaac.legged_gym, robolearn.isaac.isaaclab) only translates: which robot
joints the network sees and in which order (policy_joints), which gains and default pose the source
trained with (overrides), the observation terms with their scales, the clips and the command ranges,
and an eager torch module with any recurrent state as explicit inputs and outputs. This module does
the rest once for all of them: the robot spec with the overrides, the ONNX graph (recurrent state as
graph inputs/outputs), the step-by-step equivalence check against the ORIGINAL policy (recurrent state
carried), the source files copied under checkpoint/ with their sha256, an atomic write, and a final
load through robolearn.deploy.artifact.load_artifact, the reader deploy itself uses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.deploy.artifact import (
    CHECKPOINT_DIR,
    CONTRACT_FILE,
    NETWORK_FILE,
    TUNING_FIELDS,
    PolicyArtifact,
    PolicyContract,
    load_artifact,
)
from robolearn.errors import UserError, require
from robolearn.export import INPUT_NAME, ONNX_OPSET, OUTPUT_NAME, network_to_onnx
from robolearn.robots.observations import ObsTerm
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec
from robolearn.utils.io import atomic_write_json, replace_dir

# float32 networks run by two engines agree to rounding; an LSTM carried over 200 steps stays far inside.
CHECK_ATOL = 1e-5
# Observations for the check: standard normal times this, reaching the saturating range of the
# activations as real observations (up to tens of units for joint velocities) do.
CHECK_SPREAD = 2.0


@dataclass(frozen=True)
class ImportedPolicy:
    """An outside policy translated into robolearn's terms, ready for write_imported_artifact.

    source["files"] maps a file name to {"path": <source file>, "kind": <what it is>}: each is copied
    under checkpoint/ and its sha256 recorded; every other source entry (importer, yaml values, ...)
    goes to contract.source as given.
    """

    robot: str  # robolearn robot registry name (go2, g1, g1_29dof)
    policy_joints: tuple[str, ...]  # robolearn joint names in the network's order
    overrides: dict[str, dict[str, float]]  # field (TUNING_FIELDS) -> {joint name: value}
    terms: tuple[ObsTerm, ...]  # observation terms in order, over the policy joints
    obs_clip: float | None
    action_clip: float | None
    command_ranges: tuple[tuple[float, float], ...]  # vx, vy, yaw rate
    gait_period_s: float | None
    history_length: int  # 1 unless the source stacks frames
    module: Any  # torch.nn.Module: forward(obs) -> action, or forward(obs, *state) -> (action, *state)
    state_shapes: tuple[tuple[int, ...], ...]  # () for feed-forward; ((1, 1, 64), (1, 1, 64)) for an LSTM
    reference: Callable[[np.ndarray], np.ndarray] | None  # the original policy, stateful, one step a call
    source: dict[str, Any]  # importer, files, yaml values, versions


def _torch() -> Any:
    return require("torch", "importing a policy", "deploy")


def spec_with_overrides(base: RobotSpec, overrides: Mapping[str, Mapping[str, float]]) -> RobotSpec:
    """robolearn's spec with the importer's per-joint tuning values; UserError naming a bad field, joint or value."""
    changes: dict[str, tuple[float, ...]] = {}
    for field, values in overrides.items():
        if field not in TUNING_FIELDS:
            raise UserError(
                f"override of '{field}' is not allowed: an imported policy may change only {', '.join(TUNING_FIELDS)}"
                " (hardware fields come from robolearn's robot spec)"
            )
        current = list(getattr(base, field))
        for joint, value in values.items():
            if joint not in base.joint_names:
                raise UserError(f"override {field} names joint '{joint}', which {base.name} does not have")
            v = float(value)
            if not np.isfinite(v) or (v < 0 and field != "default_joint_pos"):
                raise UserError(f"override {field} of {joint} is {value}; it must be a finite number >= 0")
            current[base.joint_names.index(joint)] = v
        changes[field] = tuple(current)
    try:
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    except UserError as exc:
        raise UserError(f"the imported policy's overrides do not fit {base.name}: {exc}") from None


def max_policy_action_clip(spec: RobotSpec, policy_joints: Sequence[str]) -> float:
    """The largest action clip that still moves a policy joint's target: beyond reach / scale every
    policy joint's target is past its range and the command limiter pins it (robolearn.deploy.artifact.max_action_clip)."""
    sub = spec.select(policy_joints)
    default = sub.default_pos_array
    reach = np.maximum(np.asarray(sub.joint_pos_upper) - default, default - np.asarray(sub.joint_pos_lower))
    return float(np.max(reach / sub.action_scale_array))


def _state_names(count: int) -> list[tuple[str, str]]:
    """Graph input/output names of the recurrent state entries: h/c for an LSTM, h for a GRU."""
    if count == 1:
        return [("h_in", "h_out")]
    if count == 2:
        return [("h_in", "h_out"), ("c_in", "c_out")]
    return [(f"state{i}_in", f"state{i}_out") for i in range(count)]


def _check_policy_joints(spec: RobotSpec, joints: Sequence[str]) -> None:
    if not joints:
        raise UserError("the imported policy controls no joints; policy_joints is empty")
    spec.joint_index(joints)  # UserError naming an unknown or repeated joint


def check_equivalence(
    graph: bytes,
    imported: ImportedPolicy,
    input_size: int,
    steps: int,
    seed: int,
) -> dict[str, float]:
    """Largest |onnxruntime - torch module| and |onnxruntime - reference| over `steps` sequential random
    observations, each engine carrying its own recurrent state from zeros."""
    torch = _torch()
    ort = require("onnxruntime", "checking an imported policy", "deploy")
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    names = _state_names(len(imported.state_shapes))
    rng = np.random.default_rng(seed)
    observations = (rng.standard_normal((steps, 1, input_size)) * CHECK_SPREAD).astype(np.float32)
    reset = getattr(imported.reference, "reset", None)
    if callable(reset):
        reset()
    ort_state = [np.zeros(s, dtype=np.float32) for s in imported.state_shapes]
    torch_state = [torch.zeros(*s) for s in imported.state_shapes]
    errors = {"torch": 0.0} if imported.reference is None else {"torch": 0.0, "reference": 0.0}
    module = imported.module.eval()
    for obs in observations:
        feed = {INPUT_NAME: obs, **{i: s for (i, _), s in zip(names, ort_state, strict=True)}}
        ort_out = session.run(None, feed)
        action = np.asarray(ort_out[0], dtype=np.float64)
        ort_state = [np.asarray(s, dtype=np.float32) for s in ort_out[1:]]
        with torch.no_grad():
            out = module(torch.as_tensor(obs), *torch_state)
        if imported.state_shapes:
            torch_action, torch_state = out[0], list(out[1:])
        else:
            torch_action = out
        errors["torch"] = max(errors["torch"], float(np.max(np.abs(action - torch_action.double().numpy()))))
        if imported.reference is not None:
            ref = np.asarray(imported.reference(obs), dtype=np.float64).reshape(action.shape)
            errors["reference"] = max(errors["reference"], float(np.max(np.abs(action - ref))))
    return errors


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    import robolearn

    return {
        "robolearn": str(getattr(robolearn, "__version__", "unknown")),
        "torch": str(_torch().__version__),
        "onnx": str(onnx.__version__),
        "onnxruntime": str(onnxruntime.__version__),
    }


def write_imported_artifact(
    imported: ImportedPolicy, out: Path, check_steps: int = 200, seed: int = 0
) -> PolicyArtifact:
    """Write policy.onnx + checkpoint/ + contract.json for an imported policy into out (atomically),
    after checking onnxruntime against the torch module and the original policy step by step."""
    torch = _torch()
    out = Path(out)
    base = get_robot_spec(imported.robot)
    _check_policy_joints(base, imported.policy_joints)
    spec = spec_with_overrides(base, imported.overrides)
    overridden = tuple(f for f in TUNING_FIELDS if getattr(spec, f) != getattr(base, f))
    contract = PolicyContract(
        robot=spec,
        terms=imported.terms,
        obs_clip=imported.obs_clip,
        history_length=imported.history_length,
        normalization=None,
        action_clip=None,
        command_ranges=imported.command_ranges,
        network={},
        checkpoint=(),
        source={},
        gait_period_s=imported.gait_period_s,
        policy_joints=imported.policy_joints,
        robot_overrides=overridden,
    )
    input_size = contract.input_size
    size = len(imported.policy_joints)
    if check_steps < 1:
        raise UserError(f"check_steps={check_steps} is out of range; use an integer >= 1")

    module = imported.module.eval()
    with torch.no_grad():
        probe = module(torch.zeros(1, input_size), *(torch.zeros(*s) for s in imported.state_shapes))
    probe_action = probe[0] if imported.state_shapes else probe
    if tuple(probe_action.shape) != (1, size):
        raise UserError(
            f"the network outputs shape {tuple(probe_action.shape)[1:]} for {size} policy joints;"
            " the source's action count and its joint list disagree"
        )
    names = _state_names(len(imported.state_shapes))
    graph = network_to_onnx(
        module, (input_size,), [(i, o, s) for (i, o), s in zip(names, imported.state_shapes, strict=True)]
    )
    errors = check_equivalence(graph, imported, input_size, check_steps, seed)
    for name, err in errors.items():
        if not err <= CHECK_ATOL:
            raise UserError(
                f"onnxruntime disagrees with the {name} policy by {err:.3g} (> {CHECK_ATOL}) over"
                f" {check_steps} steps; not writing {out}"
            )

    # A clip beyond what moves any policy joint only widens the action guard's silent window
    # (robolearn.deploy.artifact.max_action_clip): write the largest one that still acts.
    action_clip = imported.action_clip
    source = dict(imported.source)
    bound = max_policy_action_clip(spec, imported.policy_joints)
    if action_clip is not None and action_clip > bound:
        source["action_clip"] = {
            "source": action_clip,
            "written": bound,
            "why": "beyond it every policy joint's target is past its joint range",
        }
        action_clip = bound

    files = dict(source.pop("files", {}) or {})
    checkpoint: list[dict[str, str]] = []
    recorded: dict[str, dict[str, str]] = {}
    for name, entry in files.items():
        path = Path(entry["path"])
        if not path.is_file():
            raise UserError(f"source file {path} does not exist")
        digest = _sha256(path)
        checkpoint.append({"file": f"{CHECKPOINT_DIR}/{name}", "kind": str(entry["kind"]), "sha256": digest})
        recorded[name] = {"path": str(path.resolve()), "kind": str(entry["kind"]), "sha256": digest}
    source["files"] = recorded
    source.setdefault("versions", _versions())

    state = [
        {"input": i, "output": o, "shape": list(s)}
        for (i, o), s in zip(_state_names(len(imported.state_shapes)), imported.state_shapes, strict=True)
    ]
    network = {
        "file": NETWORK_FILE,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "input_size": input_size,
        "output_size": size,
        "opset": ONNX_OPSET,
        "state": state,
        "check": {
            "steps": check_steps,
            "sequential": True,
            "atol": CHECK_ATOL,
            "max_abs_error": errors,
        },
    }
    data = dataclasses.replace(
        contract, action_clip=action_clip, network=network, checkpoint=tuple(checkpoint), source=source
    ).to_dict()

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (tmp / NETWORK_FILE).write_bytes(graph)
        (tmp / CHECKPOINT_DIR).mkdir()
        for name, entry in files.items():
            shutil.copyfile(entry["path"], tmp / CHECKPOINT_DIR / name)
        atomic_write_json(tmp / CONTRACT_FILE, data)
        load_artifact(tmp)  # refuse to put in place what deploy would refuse to read
        tmp.chmod(0o755)  # mkdtemp made it private; an artifact is shared data
        replace_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_artifact(out)
