"""ASAP's delta-action dataset: a deploy log joined with its target's truth log (docs/deploy.md).

A recording on a target (the sim bridge over DDS, or the in-process backend; a real robot with motion
capture in the same layout) is two folders: the deploy log (robolearn.deploy.recorder: what the
policy saw and sent, each policy step stamped with its state's tick) and the truth log
(robolearn.deploy.truth: the target's whole state at every tick). `write_delta_dataset` joins them
into a Minari-layout dataset (robolearn.datasets, ARCHITECTURE contract 5), one episode per POLICY
stretch, with these fields (schema DELTA_SCHEMA, version DELTA_VERSION, kept in the dataset's
provenance):

- observations (T+1, nq + nv), float64: the target's true state at each policy step's tick, MuJoCo's
  qpos then qvel (free joint position, quaternion w x y z, joint positions; world-frame linear and
  body-frame angular velocity, joint velocities), in the layout the provenance's `layout` gives;
- actions (T, joints), float32: the action the policy sent at that step, after the contract's clip,
  in the robot's motor order and action units (joint target = default pose + action_scale x action);
- rewards: zeros (a robot has none); terminations: the stretch ended in a fault; truncations: it
  ended otherwise;
- infos: time_s (T+1, s since the stretch began, on the deploy clock) and tick (T+1, the robot's
  counter, ms);
- provenance: schema, robot, control_dt, action_scale, default_pose, layout, the mismatch the target
  simulated (its name and edits: the training side never reads them), and both logs' paths (the
  first recording's; a dataset joining several lists each under `recordings`).

`load_delta_dataset(path, robot)` reads it back and refuses, in one line, a dataset of another
schema version or another robot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from robolearn.datasets import Episode, load_dataset, write_dataset
from robolearn.deploy.recorder import read_log
from robolearn.deploy.safety import SafetyState
from robolearn.deploy.truth import read_truth
from robolearn.errors import UserError

DELTA_SCHEMA = "robolearn-asap-delta"
DELTA_VERSION = 1
# How far (ms) a policy step's state tick may lie from one control period after the previous step's:
# one LowState period at 500 Hz, the jitter of a policy loop reading the newest state.
TICK_TOLERANCE_MS = 2
# Provenance counts summed over joined recordings: splits of POLICY stretches at irregular steps, and
# the stretches those splits left too short for a transition (dropped; each split adds one stretch).
SPLIT_COUNTS = ("irregular_steps_split", "short_stretches_dropped")


@dataclass(frozen=True)
class DeltaSegment:
    """One POLICY stretch: true states at each step (T+1) and the actions sent between them (T)."""

    qpos: np.ndarray  # (T+1, nq)
    qvel: np.ndarray  # (T+1, nv)
    actions: np.ndarray  # (T, joints)
    time_s: np.ndarray  # (T+1,)
    tick: np.ndarray  # (T+1,)
    terminated: bool

    @property
    def steps(self) -> int:
        """Transitions in the stretch."""
        return len(self.actions)


def policy_stretches(steps: np.ndarray, ticks: np.ndarray, period_ms: int) -> tuple[list[np.ndarray], int]:
    """The runs of a recording's POLICY steps that are one control period apart (index arrays, in
    order) and how many splits cut them. A transition is one control period of the robot's clock: a
    step that does not follow the previous one's step number, or whose state tick is further than
    TICK_TOLERANCE_MS from one period after the previous one's (lost or repeated LowStates, a late
    policy step), starts a new run, since the delta task simulates exactly one period per step."""
    if len(steps) == 0:
        return [], 0
    off_period = np.abs(np.diff(np.asarray(ticks, dtype=np.int64)) - period_ms) > TICK_TOLERANCE_MS
    breaks = np.flatnonzero((np.diff(np.asarray(steps, dtype=np.int64)) != 1) | off_period) + 1
    return np.split(np.arange(len(steps)), breaks), len(breaks)


def delta_segments(log_dir: str | Path, truth_dir: str | Path) -> tuple[list[DeltaSegment], dict[str, Any]]:
    """The recording's POLICY stretches joined with the truth, and the provenance they carry."""
    log, truth = read_log(log_dir), read_truth(truth_dir)
    contract = log.meta.get("contract")
    if contract is None:
        raise UserError(
            f"{log_dir} was recorded without a policy; there are no actions to learn a delta from"
        )
    robot = contract["robot"]["name"]
    if truth.meta["robot"] != robot:
        raise UserError(
            f"{truth_dir} is a truth log of the {truth.meta['robot']} but {log_dir} drove the {robot};"
            " record both on the same target"
        )
    if "tick" not in (log.policy.dtype.names or ()):
        raise UserError(
            f"{log_dir} is a version 1 deploy log (its policy steps carry no tick to join the truth by);"
            " record it again with this version"
        )
    where = {int(t): i for i, t in enumerate(truth.records["tick"])}
    p = log.policy
    keep = p[p["safety"] == SafetyState.POLICY.value]
    fault_times = [float(e["t"]) for e in log.events if e.get("type") == "fault"]
    segments: list[DeltaSegment] = []
    period_ms = round(float(contract.get("control_dt") or contract["robot"]["control_dt"]) * 1000)
    parts, splits = policy_stretches(keep["step"], keep["tick"], period_ms)
    short = sum(1 for part in parts if len(part) < 2)
    dropped = int((truth.meta.get("summary") or {}).get("dropped", 0))
    for part in (keep[i] for i in parts):
        missing = [int(t) for t in part["tick"] if int(t) not in where]
        if missing:
            raise UserError(
                f"{truth_dir} has no state at tick {missing[0]} of {log_dir}'s policy steps ({dropped} truth"
                " records were dropped while writing): is it this session's truth log?"
            )
        if len(part) < 2:
            continue
        rows = truth.records[[where[int(t)] for t in part["tick"]]]
        end = float(part["t"][-1])
        later = keep["t"][keep["t"] > end]
        nxt = float(later[0]) if len(later) else np.inf
        segments.append(
            DeltaSegment(
                qpos=np.asarray(rows["qpos"], dtype=np.float64),
                qvel=np.asarray(rows["qvel"], dtype=np.float64),
                actions=np.asarray(part["action"][:-1], dtype=np.float32),
                time_s=np.asarray(part["t"] - part["t"][0], dtype=np.float64),
                tick=np.asarray(part["tick"], dtype=np.int64),
                terminated=any(end <= t < nxt for t in fault_times),
            )
        )
    provenance = {
        "schema": {"name": DELTA_SCHEMA, "version": DELTA_VERSION},
        "irregular_steps_split": splits,
        "short_stretches_dropped": short,
        "robot": robot,
        "control_dt": float(contract.get("control_dt") or contract["robot"]["control_dt"]),
        "action_scale": contract["robot"]["action_scale"],
        "default_pose": contract["robot"]["default_joint_pos"],
        "layout": truth.meta["layout"],
        "mismatch": truth.meta["mismatch"],
        "source": truth.meta["source"],
        "log": str(Path(log_dir).resolve()),
        "truth": str(Path(truth_dir).resolve()),
    }
    return segments, provenance


# Provenance every recording joined into one dataset must share: one robot, one target, one layout.
SHARED_PROVENANCE = ("robot", "control_dt", "action_scale", "default_pose", "layout", "mismatch", "source")


def write_delta_dataset(
    log_dir: str | Path,
    truth_dir: str | Path,
    out: str | Path,
    dataset_id: str = "robolearn/asap-delta-v0",
    overwrite: bool = False,
    more: Sequence[tuple[str | Path, str | Path]] = (),
) -> Path:
    """Join a recording into the delta-action dataset (module docstring); returns its data/ folder.
    `more` holds further (log, truth) recordings on the same target (ASAP's later rounds, recorded
    with the fine-tuned policy), appended as more episodes; the provenance lists each recording
    under `recordings` and refuses, in one line, a recording of another robot, target or layout."""
    segments: list[DeltaSegment] = []
    recordings: list[dict[str, Any]] = []
    provenance: dict[str, Any] = {}
    for log, truth in ((log_dir, truth_dir), *more):
        extra, theirs = delta_segments(log, truth)
        for key in SHARED_PROVENANCE if provenance else ():  # the first recording is the reference
            if theirs[key] != provenance[key]:
                raise UserError(
                    f"{log} has another {key} than {log_dir} ({theirs[key]!r} against {provenance[key]!r});"
                    " join only recordings of one robot on one target"
                )
        if not extra:
            raise UserError(f"{log} has no stretch of two or more policy steps in POLICY")
        segments += extra
        recordings.append({**{k: theirs[k] for k in ("log", "truth", *SPLIT_COUNTS)}, "episodes": len(extra)})
        provenance = provenance or theirs
    for key in SPLIT_COUNTS:
        provenance[key] = sum(r[key] for r in recordings)
    if more:
        provenance["recordings"] = recordings
    layout = provenance["layout"]
    width = int(layout["nq"]) + int(layout["nv"])
    n = segments[0].actions.shape[1]

    def stored(seg: DeltaSegment) -> Episode:
        terminations = np.zeros(seg.steps, dtype=bool)
        truncations = np.zeros(seg.steps, dtype=bool)
        (terminations if seg.terminated else truncations)[-1] = True
        return Episode(
            observations=np.concatenate([seg.qpos, seg.qvel], axis=1),
            actions=seg.actions,
            rewards=np.zeros(seg.steps, dtype=np.float64),
            terminations=terminations,
            truncations=truncations,
            infos={"time_s": seg.time_s, "tick": seg.tick},
        )

    return write_dataset(
        out,
        (stored(s) for s in segments),
        dataset_id=dataset_id,
        observation_space=spaces.Box(-np.inf, np.inf, (width,), np.float64),
        action_space=spaces.Box(-np.inf, np.inf, (n,), np.float32),
        author="robolearn asap collect",
        algorithm_name="robolearn deploy on a target",
        description=f"{provenance['robot']} on a target with mismatch {provenance['mismatch']['name']}",
        provenance=provenance,
        overwrite=overwrite,
    )


def load_delta_dataset(path: str | Path, robot: str) -> tuple[list[DeltaSegment], dict[str, Any]]:
    """Read a delta-action dataset for `robot`; one-line UserError for another schema or robot."""
    data = load_dataset(path)
    prov = data.provenance
    schema = prov.get("schema") or {}
    if schema.get("name") != DELTA_SCHEMA or schema.get("version") != DELTA_VERSION:
        raise UserError(
            f"{path}: schema {schema.get('name')} v{schema.get('version')} is not {DELTA_SCHEMA} v{DELTA_VERSION};"
            " collect it again (python -m robolearn.asap stage=collect)"
        )
    if prov.get("robot") != robot:
        raise UserError(f"{path} was recorded on the {prov.get('robot')}, not the {robot}; pick its robot")
    nq = int(prov["layout"]["nq"])
    segments = []
    for ep in data.episodes:
        obs = np.asarray(ep.observations)
        segments.append(
            DeltaSegment(
                qpos=obs[:, :nq],
                qvel=obs[:, nq:],
                actions=np.asarray(ep.actions, dtype=np.float32),
                time_s=np.asarray(ep.infos["time_s"]),
                tick=np.asarray(ep.infos["tick"]),
                terminated=bool(ep.terminations[-1]),
            )
        )
    return segments, prov
