"""End to end: generated run directories -> report.md, report.html, results.json, figures; and the CLI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from robolearn.report import ReportOptions, build_report
from robolearn.report.__main__ import main, parse_args
from robolearn.report.results import ALL_ENVS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_writes_every_output(built_report: Any) -> None:
    out: Path = built_report.out_dir
    assert {p.name for p in out.iterdir()} == {"report.md", "report.html", "results.json", "figures"}
    names = sorted(p.name for p in (out / "figures").iterdir())
    assert names == sorted(
        f"{n}.{ext}"
        for n in ("curve_Hopper-v5", "curve_Pendulum-v1", "final_return", "normalized_score")
        for ext in ("png", "svg")
    )
    for png in (out / "figures").glob("*.png"):
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    for svg in (out / "figures").glob("*.svg"):
        assert ET.parse(svg).getroot().tag.endswith("svg")
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_results_json_holds_the_numbers(built_report: Any) -> None:
    data = json.loads(built_report.results_json.read_text())
    groups = {(g["method"], g["env"]): g for g in data["groups"]}
    assert len(groups) == 6
    hopper_camel = groups[("camel-td3", "Hopper-v5")]
    assert hopper_camel["n_runs"] == 5 and hopper_camel["seeds"] == [0, 1, 2, 3, 4]
    for g in data["groups"]:
        for stat in ("mean", "iqm"):
            e = g[stat]
            assert e["low"] <= e["point"] <= e["high"]
        assert g["normalized"] is not None  # Hopper and Pendulum both have references
    # The generated sweep has camel-td3 > sac > td3 on Hopper by a wide margin.
    poi = {(r["env"], r["x"], r["y"]): r for r in data["probability_of_improvement"]}
    assert poi[("Hopper-v5", "camel-td3", "td3")]["point"] == 1.0
    assert (ALL_ENVS, "sac", "td3") in poi
    assert {a["method"] for a in data["normalized_aggregates"]} == {"camel-td3", "sac", "td3"}
    assert len(data["curves"]) == 6 and all(len(c["steps"]) == 10 for c in data["curves"])
    assert data["failed_runs"][0]["reason"] == "RuntimeError: CUDA error: out of memory"
    prov = data["provenance"]
    assert prov["machines"] == [
        {"cpu": "AMD EPYC 7B13", "cores": "2", "platform": "Linux-6.1.0-x86_64-with-glibc2.36", "runs": 30}
    ]
    assert prov["versions"]["torch"] == ["2.13.0+cpu"]
    assert prov["runs"][0]["command"].startswith("python -m robolearn.train ")


def test_markdown_report_content(built_report: Any) -> None:
    md = built_report.markdown.read_text()
    for heading in ("## Final return", "## Normalised scores", "## Probability of improvement", "## Figures"):
        assert heading in md
    assert "| Environment | Method | Seeds | Mean | 95% CI | IQM | 95% CI | Std | Steps |" in md
    assert "![Learning curves on Hopper-v5](figures/curve_Hopper-v5.png)" in md
    assert "RuntimeError: CUDA error: out of memory" in md
    assert "python -m robolearn.train env=hopper agent=td3 seed=0 steps=20000 method=camel" in md
    assert "D4RL" in md and "AMD EPYC 7B13" in md


def test_html_is_self_contained(built_report: Any) -> None:
    page = built_report.html.read_text()
    assert page.count('src="data:image/svg+xml;base64,') == 4
    # Nothing fetched from elsewhere: no external URLs, stylesheets or scripts.
    assert not re.search(r"""(src|href)=["'](https?:|//|figures/)""", page)
    assert "<script" not in page and "<link" not in page
    assert page.count("<table>") >= 6


def test_same_runs_give_the_same_numbers(sweep_dir: Path, built_report: Any, tmp_path: Path) -> None:
    again = build_report([sweep_dir], tmp_path / "again", ReportOptions(reps=1000))
    first = json.loads(built_report.results_json.read_text())
    second = json.loads(again.results_json.read_text())
    for key in ("groups", "probability_of_improvement", "curves", "normalized_aggregates"):
        assert first[key] == second[key]
    # Figures carry no timestamps, so they are byte-identical too.
    assert (again.out_dir / "figures" / "final_return.svg").read_bytes() == (
        built_report.out_dir / "figures" / "final_return.svg"
    ).read_bytes()


def test_report_lists_inconsistent_groups(make_run: Callable[..., Path], tmp_path: Path) -> None:
    for seed in range(3):
        make_run(f"s/{seed}", env_id="Walker2d-v5", seed=seed, final=3000.0)
    make_run("s/3", env_id="Walker2d-v5", seed=3, steps=5_000, final=800.0)
    report = build_report([tmp_path / "s"], tmp_path / "out", ReportOptions(reps=200))
    md = report.markdown.read_text()
    assert "## Warnings" in md
    assert "sac on Walker2d-v5: runs have different configs (steps: 20000, 5000)" in md
    assert "sac [steps=5000]" in md and "sac [steps=20000]" in md
    assert "Warnings" in report.html.read_text()


def test_only_failed_runs_still_make_a_report(make_run: Callable[..., Path], tmp_path: Path) -> None:
    make_run("s/0", complete=False, error="KeyError: 'eval'")
    report = build_report([tmp_path / "s"], tmp_path / "out", ReportOptions(reps=100))
    md = report.markdown.read_text()
    assert "No completed runs." in md and "KeyError: 'eval'" in md


def test_unreferenced_env_has_no_normalised_table(make_run: Callable[..., Path], tmp_path: Path) -> None:
    for seed in range(2):
        make_run(f"s/{seed}", env_id="robolearn/Go2Walk-v0", seed=seed)
    report = build_report([tmp_path / "s"], tmp_path / "out", ReportOptions(reps=100))
    md = report.markdown.read_text()
    assert "## Normalised scores" not in md and "## Probability of improvement" not in md
    assert (tmp_path / "out" / "figures" / "curve_robolearn_Go2Walk-v0.svg").exists()


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_end_to_end(sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    assert main([f"runs={sweep_dir}", f"out={out}", "reps=200", "curve_stat=mean", "title=Hopper study"]) == 0
    assert "30 runs, 3 methods, 2 envs" in capsys.readouterr().out
    data = json.loads((out / "results.json").read_text())
    assert data["title"] == "Hopper study" and data["settings"]["curve_statistic"] == "mean"
    assert data["provenance"]["report_command"].startswith("python -m robolearn.report runs=")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rns=x"], "error: unknown key 'rns' (did you mean runs?)"),
        (["out=x"], "error: missing runs="),
        (["runs"], "error: expected key=value, got 'runs'"),
        (["runs=/nonexistent/sweep"], "error: runs path '/nonexistent/sweep' does not exist"),
        (["runs=.", "reps=many"], "error: reps must be an integer, got 'many'"),
        (["runs=.", "confidence=95"], "error: confidence must be between 0 and 1"),
        (["runs=.", "curve_stat=median"], "error: curve_stat must be one of iqm, mean, got 'median'"),
    ],
)
def test_cli_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_cli_no_runs_found(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(SystemExit):
        main([f"runs={tmp_path / 'empty'}", f"out={tmp_path / 'out'}"])
    assert "no run directories under" in capsys.readouterr().err


def test_parse_args_lists_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_args(["runs=[a,b]", "++out='my report'", "points=20"])
    assert [str(p) for p in args.runs] == ["a", "b"]
    assert str(args.out) == "my report" and args.options.points == 20
    assert [str(p) for p in parse_args(["runs=a,b"]).runs] == ["a", "b"]
    assert main(["--help"]) == 0
    assert "runs=<path>" in capsys.readouterr().out


def test_runs_path_with_commas(make_run: Callable[..., Path], tmp_path: Path) -> None:
    # Hydra's override_dirname job folders look like "agent=sac,seed=0".
    job = make_run("sweep/agent=sac,seed=0", seed=0)
    assert parse_args([f"runs={job}"]).runs == [job]
    assert parse_args(["runs=a,b"]).runs == [Path("a"), Path("b")]
