"""Make a report: collect runs, compute the numbers, draw the figures, write every output file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from robolearn.errors import UserError
from robolearn.report import plots
from robolearn.report.collect import Collection, collect
from robolearn.report.continual import continual_figures, continual_sections
from robolearn.report.render import build_sections, render_html, render_markdown
from robolearn.report.results import ReportOptions, Results, compute_results, results_to_dict
from robolearn.utils.io import atomic_write_text


@dataclass(frozen=True)
class BuiltReport:
    """Where a report was written, and what it holds."""

    out_dir: Path
    markdown: Path
    html: Path
    results_json: Path
    figures: list[plots.SavedFigure]
    results: Results


def build_report(
    paths: Sequence[Path],
    out_dir: Path,
    options: ReportOptions | None = None,
    command: str = "",
) -> BuiltReport:
    """Write out_dir/report.md, report.html, results.json and figures/*.png|svg for the runs under paths."""
    options = options or ReportOptions()
    for p in paths:
        if not p.exists():
            raise UserError(f"runs path '{p}' does not exist")
        if not p.is_dir():
            raise UserError(f"runs path '{p}' is not a directory (give a run or sweep directory)")
    collection = collect(paths)
    if not collection.groups and not collection.failed and not collection.issues:
        where = ", ".join(str(p) for p in paths)
        raise UserError(
            f"no run directories under {where} (a run directory holds config.yaml, metrics.jsonl or summary.json)"
        )
    results = compute_results(collection, options, report_command=command)
    figure_dir = out_dir / "figures"
    figures = draw_figures(collection, results, figure_dir)
    sections = build_sections(results, figures)
    sections[-1:-1] = continual_sections(collection)  # before provenance; [] without continual runs
    md_path, html_path, json_path = out_dir / "report.md", out_dir / "report.html", out_dir / "results.json"
    atomic_write_text(md_path, render_markdown(sections, figure_dir="figures"))
    atomic_write_text(html_path, render_html(sections))
    atomic_write_text(json_path, json.dumps(results_to_dict(results), indent=2, allow_nan=False) + "\n")
    return BuiltReport(out_dir, md_path, html_path, json_path, figures, results)


def draw_figures(collection: Collection, results: Results, figure_dir: Path) -> list[plots.SavedFigure]:
    """Learning curves per env, final-return intervals, and pooled normalised scores when available."""
    colors = plots.method_colors(collection.methods)
    conf = results.options.confidence
    stat = "IQM" if results.options.curve_stat == "iqm" else "mean"
    # (figure, file name, title, caption), drawn in report order.
    pending: list[tuple[Figure, str, str, str]] = []
    for env in results.envs:
        curves = [c for c in results.curves if c.env_id == env]
        if curves:
            pending.append(
                (
                    plots.learning_curve_figure(curves, env, colors, conf),
                    f"curve_{plots.slug(env)}",
                    f"Learning curves on {env}",
                    f"Learning curves on {env}: {stat} of evaluation return over seeds, shaded {conf:.0%} "
                    "stratified bootstrap CI; runs interpolated onto common steps.",
                )
            )
    if results.groups:
        pending.append(
            (
                plots.final_return_figure(results.groups, colors, conf),
                "final_return",
                "Final return",
                f"Final evaluation return: IQM over seeds (black tick) and {conf:.0%} bootstrap CI (bar).",
            )
        )
    if results.aggregates:
        pending.append(
            (
                plots.normalized_figure(results.aggregates, colors, conf),
                "normalized_score",
                "Normalised score over environments",
                "Normalised score pooled over each method's referenced environments: IQM and mean with "
                f"{conf:.0%} stratified bootstrap CIs.",
            )
        )
    pending.extend(continual_figures(collection))  # [] without continual runs
    return [plots.save_figure(fig, figure_dir, name, title, caption) for fig, name, title, caption in pending]
