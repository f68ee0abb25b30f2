"""Find run directories, load them, and group completed runs by (method, env).

Everything that would silently corrupt a comparison is surfaced as an `Issue` (logged as a warning and
listed in the report): unreadable files, runs whose configs differ within a group (split into labelled
variants rather than mixed), repeated seeds, differing package versions. Runs that did not finish are
kept apart as `FailedRun`s with their error message.
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robolearn.utils.dicts import flatten

log = logging.getLogger(__name__)

# A directory is a run directory when it holds one of these (a Hydra job that crashed before
# writing anything still has .hydra/).
RUN_MARKERS = ("config.yaml", "summary.json", "metrics.jsonl", "error.txt", ".hydra")

# Config keys that do not change what is learned or measured, so they may differ between the seeds
# of one experiment: the seed itself, where and how the run logs or checkpoints, the device.
IGNORED_KEYS = frozenset({"seed", "resume", "device", "torch_threads"})
IGNORED_PREFIXES = ("logger.", "checkpoint.", "hydra.")

FINAL_KEY = "eval/mean_return"
_MISSING = "<unset>"


@dataclass(frozen=True)
class Issue:
    """Something the reader of a report must know about: a bad file, an inconsistent group."""

    path: str
    message: str


@dataclass(frozen=True)
class Run:
    """One completed run directory."""

    path: Path
    label: str  # path as shown in reports
    config: dict[str, Any]
    summary: dict[str, Any]
    eval_steps: tuple[int, ...]
    eval_returns: tuple[float, ...]
    method: str
    env_id: str
    seed: int | None

    @property
    def final_return(self) -> float:
        """Mean evaluation return at the end of training (summary.json)."""
        return float(self.summary[FINAL_KEY])


@dataclass(frozen=True)
class FailedRun:
    """A run directory without a usable result: interrupted, crashed, or with a corrupt summary."""

    label: str
    method: str
    env_id: str
    seed: int | None
    reason: str


@dataclass
class Group:
    """The runs of one method on one environment (one variant, when configs differed)."""

    method: str
    env_id: str
    runs: list[Run]

    @property
    def seeds(self) -> list[int | None]:
        """Seeds of the runs, in run order."""
        return [r.seed for r in self.runs]

    @property
    def final_returns(self) -> list[float]:
        """Final evaluation returns, one per run."""
        return [r.final_return for r in self.runs]


@dataclass
class Collection:
    """Everything found under the given paths."""

    groups: list[Group] = field(default_factory=list)
    failed: list[FailedRun] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def runs(self) -> list[Run]:
        """All completed runs, in group order."""
        return [r for g in self.groups for r in g.runs]

    @property
    def methods(self) -> list[str]:
        """Method labels in display order."""
        return sorted({g.method for g in self.groups})

    @property
    def envs(self) -> list[str]:
        """Environment ids in display order."""
        return sorted({g.env_id for g in self.groups})

    def group(self, method: str, env_id: str) -> Group | None:
        """The group of a method on an environment, if any."""
        for g in self.groups:
            if g.method == method and g.env_id == env_id:
                return g
        return None

    def warn(self, path: str, message: str) -> None:
        """Record an issue and log it as a warning."""
        self.issues.append(Issue(path, message))
        log.warning("%s: %s", path, message)


def find_run_dirs(root: Path, max_depth: int = 3) -> list[Path]:
    """Run directories at `root` or below it, up to max_depth levels, sorted.

    Hydra writes sweeps as <sweep>/<job>/ (or <sweep>/<subdir>/<job>/ with a custom subdir); the search
    stops at a run directory, so checkpoints and TensorBoard folders inside runs are never walked.
    """

    def walk(d: Path, depth: int) -> Iterator[Path]:
        if any((d / m).exists() for m in RUN_MARKERS):
            yield d
            return
        if depth >= max_depth:
            return
        for child in sorted(d.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                yield from walk(child, depth + 1)

    return list(walk(root, 0))


def method_label(config: dict[str, Any]) -> str:
    """'sac' for a plain agent, 'camel-td3' for method camel on a td3 agent, 'hypercrl' for a
    loop that names its method and has no agent (robolearn.runs.loop)."""
    algo = _get(config, "agent.algo", None)
    method = config.get("method")
    name = method.get("name") if isinstance(method, dict) else None
    if algo is None:
        return str(name) if name else "?"
    return f"{name}-{algo}" if name else str(algo)


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The flattened config without keys that may differ across seeds of one experiment: the fixed ones,
    and those the run's own `report.seed_keys` names (a finetune run's seed picks its own demos and
    encoder, so `data` and `encoder` vary with the seed there)."""
    report = config.get("report") if isinstance(config.get("report"), dict) else {}
    per_seed = {str(k) for k in (report or {}).get("seed_keys") or []}
    return {
        k: v
        for k, v in flatten(config).items()
        if k not in IGNORED_KEYS
        and k not in per_seed
        and not k.startswith("report.")
        and k.rsplit(".", 1)[-1] != "seed"
        and not any(k.startswith(p) for p in IGNORED_PREFIXES)
    }


def collect(paths: Sequence[Path], max_depth: int = 3) -> Collection:
    """Load every run directory under `paths` and group the completed ones by (method, env)."""
    collection = Collection()
    seen: set[Path] = set()
    loaded: list[Run] = []
    for root in paths:
        for run_dir in find_run_dirs(root, max_depth=max_depth):
            resolved = run_dir.resolve()
            if resolved in seen:  # the same run reached through two of the given paths
                continue
            seen.add(resolved)
            run = _load_run(run_dir, collection)
            if run is not None:
                loaded.append(run)
    by_key: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for run in loaded:
        by_key[(run.method, run.env_id)].append(run)
    for (method, env_id), runs in sorted(by_key.items()):
        collection.groups.extend(_split_variants(method, env_id, runs, collection))
    for group in collection.groups:
        _check_group(group, collection)
    return collection


def _load_run(run_dir: Path, collection: Collection) -> Run | None:
    label = str(run_dir)
    config = _read_config(run_dir, collection)
    method = method_label(config) if config else "?"
    env_id = str(_get(config, "env.id", "?")) if config else "?"
    seed = _as_int(config.get("seed")) if config else None

    def failed(reason: str) -> None:
        collection.failed.append(FailedRun(label, method, env_id, seed, reason))

    summary_path = run_dir / "summary.json"
    if not summary_path.exists():
        failed(_error_text(run_dir) or "incomplete: no summary.json (interrupted, or still running)")
        return None
    summary = _read_json(summary_path, collection, what=f"{method} on {env_id}, seed {seed}")
    if summary is None:
        return None
    status = summary.get("status", "completed")
    if status != "completed":
        error = _error_text(run_dir)
        failed(f"status {status!r}" + (f": {error}" if error else ""))
        return None
    final = summary.get(FINAL_KEY)
    if not isinstance(final, int | float) or isinstance(final, bool) or not math.isfinite(final):
        collection.warn(label, f"summary.json has no finite {FINAL_KEY} ({final!r}); run left out")
        return None
    if not config:
        collection.warn(label, "no readable config.yaml, so method and env are unknown; run left out")
        return None
    if seed is None:
        seed = _as_int(summary.get("seed"))
    steps, returns = _read_eval_curve(run_dir, collection)
    return Run(
        path=run_dir,
        label=label,
        config=config,
        summary=summary,
        eval_steps=steps,
        eval_returns=returns,
        method=method,
        env_id=env_id,
        seed=seed,
    )


def _read_config(run_dir: Path, collection: Collection) -> dict[str, Any]:
    for candidate in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if not candidate.exists():
            continue
        try:
            data = yaml.safe_load(candidate.read_text())
        except (OSError, yaml.YAMLError) as exc:
            collection.warn(str(candidate), f"unreadable YAML ({_one_line(exc)})")
            continue
        if isinstance(data, dict):
            return data
        collection.warn(str(candidate), "config is not a mapping")
    return {}


def _read_json(path: Path, collection: Collection, what: str) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        collection.warn(str(path), f"unreadable JSON ({_one_line(exc)}); run ({what}) left out")
        return None
    if not isinstance(data, dict):
        collection.warn(str(path), f"not a JSON object; run ({what}) left out")
        return None
    return data


def _read_eval_curve(run_dir: Path, collection: Collection) -> tuple[tuple[int, ...], tuple[float, ...]]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        collection.warn(str(run_dir), "no metrics.jsonl: no learning curve for this run")
        return (), ()
    by_step: dict[int, float] = {}
    bad_lines = 0
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        collection.warn(str(path), f"unreadable ({_one_line(exc)})")
        return (), ()
    for line in lines:
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = row["step"]
        except (ValueError, KeyError, TypeError):
            bad_lines += 1
            continue
        value = row.get(FINAL_KEY)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            # A resumed run logs some steps twice; the later line is the one that continued.
            by_step[int(step)] = float(value)
    if bad_lines:
        collection.warn(str(path), f"{bad_lines} unreadable line(s) skipped")
    steps = sorted(by_step)
    return tuple(steps), tuple(by_step[s] for s in steps)


def _split_variants(method: str, env_id: str, runs: list[Run], collection: Collection) -> list[Group]:
    """One group, or one group per config variant (labelled by the keys that differ) with a warning."""
    flat = [comparable_config(r.config) for r in runs]
    keys = sorted(set().union(*flat))
    differing = [k for k in keys if len({_freeze(f.get(k, _MISSING)) for f in flat}) > 1]
    if not differing:
        return [Group(method, env_id, sorted(runs, key=_seed_order))]
    variants: dict[tuple[Any, ...], list[Run]] = defaultdict(list)
    for run, f in zip(runs, flat, strict=True):
        variants[tuple(_freeze(f.get(k, _MISSING)) for k in differing)].append(run)
    details = "; ".join(
        f"{k}: " + ", ".join(sorted({_show(f.get(k, _MISSING)) for f in flat})) for k in differing[:6]
    )
    more = f" (and {len(differing) - 6} more keys)" if len(differing) > 6 else ""
    collection.warn(
        f"{method} on {env_id}",
        f"runs have different configs ({details}{more}); reported as {len(variants)} separate variants",
    )
    groups = []
    for _, members in sorted(variants.items(), key=lambda kv: repr(kv[0])):
        first = comparable_config(members[0].config)
        tag = ", ".join(f"{k}={_show(first.get(k, _MISSING))}" for k in differing[:3])
        if len(differing) > 3:
            tag += ", …"
        groups.append(Group(f"{method} [{tag}]", env_id, sorted(members, key=_seed_order)))
    return groups


def _check_group(group: Group, collection: Collection) -> None:
    where = f"{group.method} on {group.env_id}"
    if len(group.runs) == 1:
        collection.warn(
            where, "only one run: its confidence intervals are a single point, not an uncertainty"
        )
    seeds = [s for s in group.seeds if s is not None]
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        collection.warn(
            where,
            f"seed(s) {', '.join(map(str, repeated))} appear in more than one run directory: "
            "the same run copied twice would be counted twice",
        )
    versions: dict[str, set[str]] = defaultdict(set)
    for run in group.runs:
        recorded = run.summary.get("versions")
        if isinstance(recorded, dict):
            for package, version in recorded.items():
                versions[str(package)].add(str(version))
    mixed = {p: v for p, v in sorted(versions.items()) if len(v) > 1}
    if mixed:
        collection.warn(
            where,
            "runs used different package versions: "
            + "; ".join(f"{p} {', '.join(sorted(v))}" for p, v in mixed.items()),
        )


def _error_text(run_dir: Path) -> str:
    path = run_dir / "error.txt"
    if not path.exists():
        return ""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    # The last non-empty line of a traceback is the exception itself.
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _seed_order(run: Run) -> tuple[int, int, str]:
    return (run.seed is None, run.seed or 0, run.label)


def _freeze(value: Any) -> Any:
    return json.dumps(value, sort_keys=True, default=str)


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
