"""The numbers of a report, computed from a Collection: final-return, normalised-score and
probability-of-improvement tables, learning curves, and the provenance of every run."""

from __future__ import annotations

import datetime as _dt
import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robolearn.report import stats
from robolearn.report.collect import Collection, FailedRun, Group, Issue
from robolearn.report.curves import Curve, aggregate_curve
from robolearn.report.references import ReferenceScores, reference_for

ALL_ENVS = "all envs"


@dataclass(frozen=True)
class ReportOptions:
    """How the statistics are computed; recorded in results.json and the report."""

    reps: int = stats.DEFAULT_REPS
    confidence: float = stats.DEFAULT_CONFIDENCE
    seed: int = 0
    curve_stat: str = "iqm"
    points: int = 100
    title: str = "robolearn results"


@dataclass(frozen=True)
class NormalizedResult:
    """A group's final returns on the random (0) to reference (1) scale."""

    mean: stats.Estimate
    iqm: stats.Estimate
    reference: ReferenceScores
    version_differs: bool  # the run's env version is not the one the reference was measured on


@dataclass(frozen=True)
class GroupResult:
    """Final-return statistics of one method on one environment."""

    method: str
    env_id: str
    seeds: tuple[int | None, ...]
    final_returns: tuple[float, ...]
    mean: stats.Estimate
    iqm: stats.Estimate
    std: float
    steps: int | None
    normalized: NormalizedResult | None

    @property
    def n_runs(self) -> int:
        """Number of runs (seeds)."""
        return len(self.final_returns)


@dataclass(frozen=True)
class AggregateResult:
    """A method's normalised score pooled over several environments."""

    method: str
    envs: tuple[str, ...]
    iqm: stats.Estimate
    mean: stats.Estimate
    n_runs: int


@dataclass(frozen=True)
class ImprovementResult:
    """P(X > Y) on one environment, or averaged over the environments both methods ran on."""

    env: str
    x: str
    y: str
    estimate: stats.Estimate
    n_x: int
    n_y: int


@dataclass(frozen=True)
class RunRecord:
    """What a reader needs to reproduce one run."""

    label: str
    method: str
    env_id: str
    seed: int | None
    steps: int | None
    wall_time_s: float | None
    command: str


@dataclass(frozen=True)
class Machine:
    """A CPU that ran some of the runs."""

    model: str
    cores: str
    platform: str
    runs: int


@dataclass
class Provenance:
    """Commands, seeds, package versions and machines behind the numbers."""

    runs: list[RunRecord] = field(default_factory=list)
    versions: dict[str, list[str]] = field(default_factory=dict)
    machines: list[Machine] = field(default_factory=list)
    generated: str = ""
    report_command: str = ""


@dataclass
class Results:
    """Everything a report shows."""

    options: ReportOptions
    groups: list[GroupResult]
    aggregates: list[AggregateResult]
    improvements: list[ImprovementResult]
    curves: list[Curve]
    issues: list[Issue]
    failed: list[FailedRun]
    provenance: Provenance

    @property
    def envs(self) -> list[str]:
        """Environment ids in display order."""
        return sorted({g.env_id for g in self.groups})

    @property
    def methods(self) -> list[str]:
        """Method labels in display order."""
        return sorted({g.method for g in self.groups})

    def groups_for(self, env_id: str) -> list[GroupResult]:
        """The groups on one environment, by method."""
        return sorted((g for g in self.groups if g.env_id == env_id), key=lambda g: g.method)


def compute_results(collection: Collection, options: ReportOptions, report_command: str = "") -> Results:
    """All report numbers for a collection."""
    kw: dict[str, Any] = {"reps": options.reps, "confidence": options.confidence, "seed": options.seed}
    groups = [_group_result(g, kw) for g in collection.groups]
    curves = []
    for g in collection.groups:
        curve = aggregate_curve(g, statistic=options.curve_stat, points=options.points, **kw)
        if curve is None and any(r.eval_steps for r in g.runs):
            collection.warn(f"{g.method} on {g.env_id}", "runs' evaluation steps do not overlap: no curve")
        if curve is not None:
            curves.append(curve)
    return Results(
        options=options,
        groups=groups,
        aggregates=_aggregates(collection.groups, kw),
        improvements=_improvements(collection.groups, kw),
        curves=curves,
        issues=list(collection.issues),
        failed=list(collection.failed),
        provenance=_provenance(collection, report_command),
    )


def _group_result(group: Group, kw: dict[str, Any]) -> GroupResult:
    finals = np.asarray(group.final_returns, dtype=np.float64)
    tasks = [finals]
    normalized = None
    ref = reference_for(group.env_id)
    if ref is not None:
        norm = [stats.normalize(finals, ref.random, ref.reference)]
        normalized = NormalizedResult(
            mean=stats.interval_estimate(stats.aggregate_mean, norm, **kw),
            iqm=stats.interval_estimate(stats.aggregate_iqm, norm, **kw),
            reference=ref,
            version_differs=group.env_id != ref.measured_on,
        )
    steps = {r.config.get("steps") for r in group.runs}
    only_steps = steps.pop() if len(steps) == 1 else None
    return GroupResult(
        method=group.method,
        env_id=group.env_id,
        seeds=tuple(group.seeds),
        final_returns=tuple(float(x) for x in finals),
        mean=stats.interval_estimate(stats.aggregate_mean, tasks, **kw),
        iqm=stats.interval_estimate(stats.aggregate_iqm, tasks, **kw),
        # ddof=1: the spread of the seed population, not of these particular seeds.
        std=float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
        steps=only_steps if isinstance(only_steps, int) else None,
        normalized=normalized,
    )


def _aggregates(groups: list[Group], kw: dict[str, Any]) -> list[AggregateResult]:
    """Normalised IQM and mean pooled over every referenced env a method ran on (two or more)."""
    out = []
    for method in sorted({g.method for g in groups}):
        tasks, envs = [], []
        for g in sorted((g for g in groups if g.method == method), key=lambda g: g.env_id):
            ref = reference_for(g.env_id)
            if ref is not None:
                tasks.append(stats.normalize(g.final_returns, ref.random, ref.reference))
                envs.append(g.env_id)
        if len(tasks) < 2:
            continue
        out.append(
            AggregateResult(
                method=method,
                envs=tuple(envs),
                iqm=stats.interval_estimate(stats.aggregate_iqm, tasks, **kw),
                mean=stats.interval_estimate(stats.aggregate_mean, tasks, **kw),
                n_runs=sum(len(t) for t in tasks),
            )
        )
    return out


def _improvements(groups: list[Group], kw: dict[str, Any]) -> list[ImprovementResult]:
    """P(X > Y) for every pair of methods on each env, and over the envs both ran on (two or more)."""
    by_key = {(g.method, g.env_id): g for g in groups}
    methods = sorted({g.method for g in groups})
    envs = sorted({g.env_id for g in groups})
    out = []
    for x, y in itertools.combinations(methods, 2):
        shared = [e for e in envs if (x, e) in by_key and (y, e) in by_key]
        for env in shared:
            gx, gy = by_key[(x, env)], by_key[(y, env)]
            out.append(_improvement(env, x, y, [gx], [gy], kw))
        if len(shared) >= 2:
            out.append(
                _improvement(
                    ALL_ENVS, x, y, [by_key[(x, e)] for e in shared], [by_key[(y, e)] for e in shared], kw
                )
            )
    return sorted(out, key=lambda r: (r.env == ALL_ENVS, r.env, r.x, r.y))


def _improvement(
    env: str, x: str, y: str, gx: list[Group], gy: list[Group], kw: dict[str, Any]
) -> ImprovementResult:
    sx = [np.asarray(g.final_returns, dtype=np.float64) for g in gx]
    sy = [np.asarray(g.final_returns, dtype=np.float64) for g in gy]
    return ImprovementResult(
        env=env,
        x=x,
        y=y,
        estimate=stats.interval_estimate(stats.probability_of_improvement, sx, sy, **kw),
        n_x=sum(len(s) for s in sx),
        n_y=sum(len(s) for s in sy),
    )


def _provenance(collection: Collection, report_command: str) -> Provenance:
    prov = Provenance(
        generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        report_command=report_command,
    )
    versions: dict[str, set[str]] = {}
    machines: dict[tuple[str, str, str], int] = {}
    for run in sorted(collection.runs, key=lambda r: (r.env_id, r.method, r.seed or 0, r.label)):
        s = run.summary
        wall = s.get("wall_time_s")
        steps = s.get("steps", run.config.get("steps"))
        prov.runs.append(
            RunRecord(
                label=run.label,
                method=run.method,
                env_id=run.env_id,
                seed=run.seed,
                steps=steps if isinstance(steps, int) else None,
                wall_time_s=float(wall) if isinstance(wall, int | float) else None,
                command=str(s.get("command", "")),
            )
        )
        if isinstance(s.get("versions"), dict):
            for package, version in s["versions"].items():
                versions.setdefault(str(package), set()).add(str(version))
        cpu = s["cpu"] if isinstance(s.get("cpu"), dict) else {}
        key = (str(cpu.get("model", "unknown")), str(cpu.get("cores", "?")), str(cpu.get("platform", "")))
        machines[key] = machines.get(key, 0) + 1
    prov.versions = {p: sorted(v) for p, v in sorted(versions.items())}
    prov.machines = [Machine(m, c, plat, n) for (m, c, plat), n in sorted(machines.items())]
    return prov


def results_to_dict(results: Results) -> dict[str, Any]:
    """results.json: every number of the report, with the settings that produced it."""
    o = results.options

    def group(g: GroupResult) -> dict[str, Any]:
        d: dict[str, Any] = {
            "method": g.method,
            "env": g.env_id,
            "n_runs": g.n_runs,
            "seeds": list(g.seeds),
            "steps": g.steps,
            "final_returns": list(g.final_returns),
            "mean": g.mean.as_dict(),
            "iqm": g.iqm.as_dict(),
            "std": g.std,
            "normalized": None,
        }
        if g.normalized is not None:
            ref = g.normalized.reference
            d["normalized"] = {
                "mean": g.normalized.mean.as_dict(),
                "iqm": g.normalized.iqm.as_dict(),
                "random": ref.random,
                "reference": ref.reference,
                "random_source": ref.random_source,
                "reference_source": ref.reference_source,
                "measured_on": ref.measured_on,
            }
        return d

    p = results.provenance
    return {
        "format": 1,
        "title": o.title,
        "settings": {
            "bootstrap_reps": o.reps,
            "confidence": o.confidence,
            "bootstrap_seed": o.seed,
            "curve_statistic": o.curve_stat,
            "curve_points": o.points,
            "bootstrap": "stratified percentile bootstrap over runs within each env",
        },
        "groups": [group(g) for g in results.groups],
        "normalized_aggregates": [
            {
                "method": a.method,
                "envs": list(a.envs),
                "n_runs": a.n_runs,
                "iqm": a.iqm.as_dict(),
                "mean": a.mean.as_dict(),
            }
            for a in results.aggregates
        ],
        "probability_of_improvement": [
            {"env": r.env, "x": r.x, "y": r.y, "n_x": r.n_x, "n_y": r.n_y, **r.estimate.as_dict()}
            for r in results.improvements
        ],
        "curves": [c.as_dict() for c in results.curves],
        "issues": [{"where": i.path, "message": i.message} for i in results.issues],
        "failed_runs": [
            {"run": f.label, "method": f.method, "env": f.env_id, "seed": f.seed, "reason": f.reason}
            for f in results.failed
        ],
        "provenance": {
            "generated": p.generated,
            "report_command": p.report_command,
            "versions": p.versions,
            "machines": [
                {"cpu": m.model, "cores": m.cores, "platform": m.platform, "runs": m.runs} for m in p.machines
            ],
            "runs": [
                {
                    "run": r.label,
                    "method": r.method,
                    "env": r.env_id,
                    "seed": r.seed,
                    "steps": r.steps,
                    "wall_time_s": r.wall_time_s,
                    "command": r.command,
                }
                for r in p.runs
            ],
        },
    }
