"""Mutation testing of the deploy safety layer: how many broken versions of the guards and the
command limiter the deploy tests catch.

    python benchmarks/mutation_safety.py [--max-children 1] [--out outputs/benchmarks/mutation_safety]

mutmut 3 (`pip install mutmut`; a tool of this script, not a robolearn dependency) makes every small
change it knows to robolearn/deploy/safety.py and robolearn/deploy/commands.py (flipped comparisons,
changed constants, swapped operators, dropped arguments, None for values) and runs the tests that
reach the changed function against each one. A mutant is killed when a test fails, survived when all
pass. A survivor is either a gap in the tests or an equivalent mutant: a change no caller can observe.
EQUIVALENT below lists those, each with the reason; any other survivor fails this script (exit 1).

Everything happens on a copy of the project in a temporary directory (mutmut works in ./mutants and
needs a [tool.mutmut] table, which the copy's pyproject.toml gets), so the repository stays clean.
Only the safety, commands and property tests run, single-process and niced: a few minutes on a
shared 2-core machine. Writes <out>/mutation_safety.json (every mutant's status, the survivors'
diffs), <out>/mutation_safety.md (the table) and <out>/mutation_safety.png (the bar chart).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("robolearn/deploy/safety.py", "robolearn/deploy/commands.py")
TESTS = (
    "tests/deploy/test_deploy_safety.py",
    "tests/deploy/test_deploy_commands.py",
    "tests/deploy/test_deploy_properties.py",
)
TEST_SUPPORT = ("tests/deploy/conftest.py", "tests/deploy/deploy_helpers.py")
DATA_DIRS = ("configs", "envs", "policies")


@dataclass(frozen=True)
class Equivalent:
    """Mutants no test can kill because no caller can observe them, and why.

    `function` and `change` are regular expressions, matched in full against mutmut's function name
    ("check_command", "CommandLimiter.pd", ...) and against "<original line> => <mutated line>".
    """

    function: str
    change: str
    why: str


_ASARRAY = r"(?P<pre>.*)np\.asarray\((?P<arg>[\w.]+), dtype=np\.float64\)(?P<post>.*)"
EQUIVALENT: tuple[Equivalent, ...] = (
    Equivalent(
        r"check_command|CommandLimiter\.(pd|__init__)",
        _ASARRAY + r" => (?P=pre)np\.asarray\((?P=arg), (dtype=None)?\)(?P=post)",
        "the float64 conversion of an input (dropped, or dtype=None): every caller passes float arrays"
        " (float64 from the runtime, float32 decoded from the wire) and numpy promotes float32 against"
        " the float64 limits and gains to the same values, so no output changes",
    ),
    Equivalent(
        r"CommandLimiter\.pd",
        r"(?P<pre>k[pd]_out = np\.clip\(np\.nan_to_num\(want_k[pd], )nan=0\.0, (?P<post>.*) => (?P=pre)(?P=post)",
        "nan=0.0 dropped from np.nan_to_num: NaN becomes 0.0 by default; the argument only says so",
    ),
    Equivalent(
        r"CommandLimiter\.pd",
        r"q_out = np\.clip\(q_out, self\.lower, self\.upper\) => q_out = np\.clip\(q_out, "
        r"(None, self\.upper|self\.lower, None)\)",
        "one bound of the first range clip dropped: the target is clipped into the range again after the"
        " torque window, and for intervals clip_R(clip_W(clip_R(x))) == clip_R(clip_W(x)) (clip is exact"
        " in floats, the target finite by then), so the first clip never changes the command (the"
        " same mutant of the second clip is killed)",
    ),
    Equivalent(
        r"CommandLimiter\.__init__",
        r"def .*damp_kd_fraction: float = 1\.0\) -> None: => def .*damp_kd_fraction: float = 2\.0\) -> None:",
        "a default damping fraction above 1: the fraction is clipped to [0, 1], so 2.0 is 1.0",
    ),
    Equivalent(
        r"CommandLimiter\._bounded_kd",
        r"speed = np\.abs\(np\.where\(np\.isfinite\(joint_vel\), joint_vel, 0\.0\)\) => "
        r"speed = np\.abs\(np\.where\(np\.isfinite\(joint_vel\), joint_vel, 1\.0\)\)",
        "speed 1 rad/s instead of 0 for a joint whose velocity is unknown: it caps kd at the torque limit"
        " (N·m per rad/s), and every robot's kd (at most 6.3) is far below its torque limit (23.7 or more)",
    ),
    Equivalent(
        r"CommandLimiter\.pd",
        r"stiff, np\.clip\(q_out, np\.where\(stiff, lo, -np\.inf\), np\.where\(stiff, hi, np\.inf\)\), q_out"
        r" => stiff, np\.clip\(q_out, np\.where\(stiff, lo, \+np\.inf\), np\.where\(stiff, hi, np\.inf\)\), q_out",
        "the clip bound of joints without stiffness: the enclosing np.where(stiff, ..., q_out) discards"
        " the clipped value of those joints",
    ),
    Equivalent(
        r"CommandLimiter\.pd",
        r"over = np\.abs\(torque\) > self\.tau_max => over = np\.abs\(torque\) >= self\.tau_max",
        "a torque exactly at the limit also 'over': the kp that gives exactly the limit at that error is"
        " the kp already there, so kp changes by float rounding at most (below the 1e-12 the limited"
        " counter and the tests resolve)",
    ),
    Equivalent(
        r"CommandLimiter\.pd",
        r"room = np\.where\(err > 0, (?P<rest>.*) => room = np\.where\(err >= 0, (?P=rest)",
        "which side's room a joint with err == 0 gets: its kp cap is not used there"
        " (np.where(np.abs(err) > 0, ..., kp_out))",
    ),
    Equivalent(
        r"Guards\.state",
        r"tilt = math\.degrees\(math\.acos\(max\(-1\.0, min\(1\.0, cos_tilt\)\)\)\) => tilt = math\.degrees"
        r"\(math\.acos\(max\((-2\.0, min\(1\.0|-1\.0, min\(2\.0), cos_tilt\)\)\)\)",
        "a looser clamp before acos: cos_tilt = 1 - 2 (x^2 + y^2) / norm2 is always in [-1, 1], since a"
        " rounded sum of squares never decreases when terms are added (x^2 + y^2 <= norm2); the clamp is a"
        " guard against a math domain error that cannot occur",
    ),
    Equivalent(
        r"check_command",
        r"torque = np\.where\(known, kp \* \(q - qm\) - kd \* dqm, 0\.0\) => "
        r"torque = np\.where\(known, kp \* \(q - qm\) - kd \* dqm, 1\.0\)",
        "the torque recorded for joints with an unknown state is a placeholder (those joints are checked"
        " for kp > 0 instead); 1 N·m is below every robot's smallest torque limit (23.7 N·m), so it is"
        " never reported either",
    ),
)


def _function_of(mutant: str) -> str:
    """'robolearn.deploy.commands.xǁCommandLimiterǁpd__mutmut_3' -> 'CommandLimiter.pd'."""
    name = mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[-1]
    if name.startswith("xǁ"):
        return ".".join(part for part in name[2:].split("ǁ") if part)
    return name.removeprefix("x_")


def _copy_project(work: Path) -> None:
    """The package, the data it reads, the selected tests, and a pyproject.toml with [tool.mutmut]."""
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "robolearn", work / "robolearn", ignore=skip)
    for name in DATA_DIRS:
        shutil.copytree(REPO / name, work / name, ignore=skip)
    for rel in (*TESTS, *TEST_SUPPORT):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, work / rel)
    text = (REPO / "pyproject.toml").read_text()
    # Drop a [tool.mutmut] table the project may have, then add this run's.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)

    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    text += (
        "\n[tool.mutmut]\n"
        'source_paths = ["robolearn"]\n'
        f"only_mutate = {toml_list(TARGETS)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(TESTS)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-W", "ignore::RuntimeWarning"]\n'
        f"also_copy = {toml_list(DATA_DIRS)}\n"
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(text)


def _mutmut_run(work: Path, args: list[str], log: Path, nice: int = 0) -> None:
    exe = Path(sys.executable).with_name("mutmut")
    env = {**os.environ, "ROBOLEARN_MUTATION_RUN": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("w") as fh:
        code = subprocess.run(
            [str(exe), *args],
            cwd=work,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
            check=False,
        ).returncode
    if code != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"mutmut run failed (exit {code}); the end of {log}:\n{tail}")


def _function_sources(mutated_file: Path) -> dict[str, str]:
    """Every function of mutmut's mutated copy of a file by name (the original is `<name>__mutmut_orig`)."""
    text = mutated_file.read_text()
    lines = text.splitlines()
    # By line numbers: ast.get_source_segment rescans the file for every function (minutes here).
    return {
        node.name: "\n".join(lines[node.lineno - 1 : node.end_lineno])
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name
    }


def _diff(sources: dict[str, str], mutant: str) -> tuple[str, str, str]:
    """(the unified diff, the removed lines, the added lines) of one mutant against the original."""
    short = mutant.rsplit(".", 1)[-1]
    base = short.rsplit("__mutmut_", 1)[0]
    original = sources.get(base + "__mutmut_orig", "").replace(base + "__mutmut_orig", base, 1).splitlines()
    changed = sources.get(short, "").replace(short, base, 1).splitlines()
    diff = list(difflib.unified_diff(original, changed, lineterm="", n=1))
    removed = [line[1:].strip() for line in diff if line.startswith("-") and not line.startswith("---")]
    added = [line[1:].strip() for line in diff if line.startswith("+") and not line.startswith("+++")]
    return "\n".join(diff[2:]), " / ".join(removed), " / ".join(added)


def run(max_children: int, out: Path, keep: bool, nice: int) -> dict[str, Any]:
    """Run mutmut on a temporary copy and classify every mutant; returns the report."""

    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="robolearn-mutation-"))
    started = time.perf_counter()
    try:
        _copy_project(work)
        _mutmut_run(work, ["run", "--max-children", str(max_children)], out / "mutmut.log", nice)
        mutants = classify(work)
    finally:
        if keep:
            print(f"the mutmut copy is kept in {work} (cd there and run `mutmut browse`)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return _report(mutants, time.perf_counter() - started)


def classify(work: Path) -> list[dict[str, Any]]:
    """Every mutant of a finished mutmut run in `work`: status, and for the survivors diff and reason."""
    from mutmut.stats import status_by_exit_code

    mutants: list[dict[str, Any]] = []
    for target in TARGETS:
        meta = json.loads((work / "mutants" / f"{target}.meta").read_text())
        sources = _function_sources(work / "mutants" / target)
        for name, code in sorted(meta["exit_code_by_key"].items()):
            status = status_by_exit_code[code]
            entry: dict[str, Any] = {
                "file": target,
                "mutant": name,
                "function": _function_of(name),
                "status": status,
            }
            if status != "killed":
                diff, before, after = _diff(sources, name)
                entry.update(diff=diff, before=before, after=after)
                for eq in EQUIVALENT if status == "survived" else ():
                    if re.fullmatch(eq.function, entry["function"]) and re.fullmatch(
                        eq.change, f"{before} => {after}"
                    ):
                        entry.update(status="equivalent", why=eq.why)
                        break
            mutants.append(entry)
    return mutants


def _report(mutants: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {}
    for m in mutants:
        per_file = counts.setdefault(m["file"], {})
        per_file[m["status"]] = per_file.get(m["status"], 0) + 1
    import mutmut

    return {
        "command": "python benchmarks/mutation_safety.py " + " ".join(sys.argv[1:]),
        "mutmut": getattr(mutmut, "__version__", "unknown"),
        "tests": list(TESTS),
        "seconds": round(seconds, 1),
        "counts": counts,
        "mutants": mutants,
    }


def write_outputs(report: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """JSON, markdown table and bar chart; returns the unexplained survivors."""
    statuses = ["killed", "equivalent", "survived", "timeout", "no tests", "suspicious", "not checked"]
    tmp = out / "mutation_safety.json.tmp"
    tmp.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    tmp.replace(out / "mutation_safety.json")
    counts = report["counts"]
    rows = ["| file | mutants | " + " | ".join(statuses) + " |", "|---" * (len(statuses) + 2) + "|"]
    for target, per in counts.items():
        rows.append(
            f"| {target} | {sum(per.values())} | " + " | ".join(str(per.get(s, 0)) for s in statuses) + " |"
        )
    lines = [f"`{report['command']}` (mutmut {report['mutmut']}, {report['seconds']} s)", "", *rows, ""]
    equivalents = [m for m in report["mutants"] if m["status"] == "equivalent"]
    if equivalents:
        lines += ["Equivalent mutants, by reason:", ""]
        for why in dict.fromkeys(m["why"] for m in equivalents):
            same = [m for m in equivalents if m["why"] == why]
            lines.append(f"- {len(same)} x {why}:")
            lines += [f"  - `{m['function']}`: `{m['before']}` -> `{m['after']}`" for m in same]
        lines.append("")
    unexplained = [m for m in report["mutants"] if m["status"] not in ("killed", "equivalent")]
    if unexplained:
        lines += ["Not killed and not known equivalent:", ""]
        lines += [f"- {m['status']}: `{m['mutant']}`: `{m['before']}` -> `{m['after']}`" for m in unexplained]
    tmp = out / "mutation_safety.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out / "mutation_safety.md")
    print("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return unexplained
    fig, ax = plt.subplots(figsize=(6, 2.5))
    colors = {"killed": "tab:green", "equivalent": "tab:gray", "survived": "tab:red"}
    for row, per in enumerate(counts.values()):
        left = 0
        for s in statuses:
            n = per.get(s, 0)
            if n:
                ax.barh(row, n, left=left, color=colors.get(s, "tab:orange"), label=s if row == 0 else None)
                left += n
    ax.set_yticks(range(len(counts)), [Path(t).name for t in counts])
    ax.set_xlabel("mutants")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "mutation_safety.png", dpi=120)
    return unexplained


def main() -> None:
    """Parse arguments, run, write outputs; exit 1 if a mutant survived that is not listed as equivalent."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--max-children", type=int, default=1, help="mutants tested in parallel (default 1)")
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "benchmarks" / "mutation_safety")
    parser.add_argument("--nice", type=int, default=10, help="niceness of the mutmut process (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy (for `mutmut browse`)")
    parser.add_argument(
        "--classify",
        type=Path,
        default=None,
        help="only classify a kept copy's results again (after `mutmut run <names>` there)",
    )
    args = parser.parse_args()
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print(
            "mutmut is not installed: pip install 'mutmut>=3.3' (a tool of this script only)", file=sys.stderr
        )
        raise SystemExit(2) from None
    if args.max_children < 1:
        print(f"--max-children={args.max_children} is out of range; use 1 or more", file=sys.stderr)
        raise SystemExit(2)
    if args.classify is not None:
        if not (args.classify / "mutants").is_dir():
            print(
                f"--classify={args.classify} holds no mutmut run (no mutants/); pass a --keep copy",
                file=sys.stderr,
            )
            raise SystemExit(2)
        args.out.mkdir(parents=True, exist_ok=True)
        report = _report(classify(args.classify), 0.0)
    else:
        report = run(args.max_children, args.out, args.keep, args.nice)
    unexplained = write_outputs(report, args.out)
    raise SystemExit(1 if unexplained else 0)


if __name__ == "__main__":
    main()
