"""python -m robolearn.report runs=<path>[,<path>...] out=<dir> [reps=2000] [seed=0] ...

Hydra-style key=value arguments, as every robolearn verb takes; see docs/report.md.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from robolearn.errors import UserError, close_matches, report_user_errors
from robolearn.report.curves import STATISTICS
from robolearn.report.results import ReportOptions

USAGE = """usage: python -m robolearn.report runs=<path>[,<path>...] [out=report] [key=value ...]

keys:
  runs        run or sweep directories to report on, comma-separated (or [a,b]); required
  out         folder for report.md, report.html, results.json and figures/ (default: report)
  reps        bootstrap resamples (default: 2000)
  confidence  confidence level of intervals (default: 0.95)
  seed        bootstrap seed (default: 0)
  curve_stat  iqm | mean: the statistic of learning curves (default: iqm)
  points      at most this many steps per learning curve (default: 100)
  title       report title (default: "robolearn results")
"""

KEYS = ("runs", "out", "reps", "confidence", "seed", "curve_stat", "points", "title")


@dataclass(frozen=True)
class ReportArgs:
    """Parsed command line."""

    runs: list[Path]
    out: Path
    options: ReportOptions = field(default_factory=ReportOptions)


def parse_args(argv: Sequence[str]) -> ReportArgs:
    """Parse key=value arguments; any mistake is a one-line UserError."""
    values: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.strip().lstrip("+")  # Hydra's +key= / ++key= spellings mean the same here
        if not sep or not key:
            raise UserError(f"expected key=value, got '{arg}' (e.g. runs=multirun/2025-01-01/12-00-00)")
        if key not in KEYS:
            raise UserError(f"unknown key '{key}'{close_matches(key, KEYS)}; valid keys: {', '.join(KEYS)}")
        values[key] = _unquote(value.strip())
    if not values.get("runs"):
        raise UserError("missing runs=<path>[,<path>...]: the run or sweep directories to report on")
    # Hydra names job folders after their overrides ("agent=sac,seed=0"), so a path may hold commas:
    # a value that is an existing path as a whole is one path, not a list.
    whole = _unquote(values["runs"])
    runs = [Path(whole)] if Path(whole).exists() else [Path(p) for p in _split_list(values["runs"])]
    if not runs:
        raise UserError("runs= names no path")
    defaults = ReportOptions()
    options = ReportOptions(
        reps=_int(values, "reps", defaults.reps, low=1),
        confidence=_fraction(values, "confidence", defaults.confidence),
        seed=_int(values, "seed", defaults.seed, low=0),
        curve_stat=values.get("curve_stat", defaults.curve_stat),
        points=_int(values, "points", defaults.points, low=2),
        title=values.get("title", defaults.title),
    )
    if options.curve_stat not in STATISTICS:
        raise UserError(f"curve_stat must be one of {', '.join(STATISTICS)}, got '{options.curve_stat}'")
    return ReportArgs(runs=runs, out=Path(values.get("out") or "report"), options=options)


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _split_list(value: str) -> list[str]:
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    return [_unquote(v.strip()) for v in value.split(",") if v.strip()]


def _int(values: dict[str, str], key: str, default: int, low: int) -> int:
    if key not in values:
        return default
    try:
        number = int(values[key])
    except ValueError:
        raise UserError(f"{key} must be an integer, got '{values[key]}'") from None
    if number < low:
        raise UserError(f"{key} must be >= {low}, got {number}")
    return number


def _fraction(values: dict[str, str], key: str, default: float) -> float:
    if key not in values:
        return default
    try:
        number = float(values[key])
    except ValueError:
        raise UserError(f"{key} must be a number, got '{values[key]}'") from None
    if not 0.0 < number < 1.0:
        raise UserError(f"{key} must be between 0 and 1 (e.g. 0.95), got {number}")
    return number


@report_user_errors
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of python -m robolearn.report and robolearn-report."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "help") for a in args_list):
        print(USAGE, end="")
        return 0
    args = parse_args(args_list)
    _setup_logging()
    from robolearn.report.build import build_report

    command = "python -m robolearn.report " + " ".join(shlex.quote(a) for a in args_list)
    report = build_report(args.runs, args.out, args.options, command=command)
    r = report.results
    n_runs = sum(g.n_runs for g in r.groups)
    print(
        f"report: {report.html} and {report.markdown} ({n_runs} runs, {len(r.methods)} methods, "
        f"{len(r.envs)} envs; {len(r.failed)} incomplete/failed, {len(r.issues)} warnings)"
    )
    return 0


def _setup_logging() -> None:
    logger = logging.getLogger("robolearn.report")
    if logger.handlers:
        return
    try:
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(show_time=False, show_path=False, markup=False)
    except ImportError:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


if __name__ == "__main__":
    sys.exit(main())
