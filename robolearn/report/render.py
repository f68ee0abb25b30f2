"""Render Results as a Markdown report and a self-contained HTML page.

Both formats are built from the same list of sections (tables, figures, notes), so they always show
the same numbers. The HTML page embeds its figures as base64 SVG and its style inline: it can be
mailed, attached to an issue or opened offline without any other file.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from robolearn.report.plots import SavedFigure
from robolearn.report.results import ALL_ENVS, Results
from robolearn.report.stats import Estimate


@dataclass(frozen=True)
class Cell:
    """One table cell; numeric cells are right-aligned, bold marks the best entry."""

    text: str
    numeric: bool = False
    bold: bool = False
    code: bool = False


@dataclass
class Table:
    """A captioned table."""

    caption: str
    headers: list[str]
    rows: list[list[Cell]]
    note: str = ""


@dataclass
class Section:
    """A titled part of the report: paragraphs, then tables, then figures."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[SavedFigure] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # a bulleted list
    code: list[str] = field(default_factory=list)  # preformatted lines
    warning: bool = False


def fmt(x: float | None, digits: int | None = None) -> str:
    """A number with precision that suits its size: returns of 3000 need no decimals of 0.003."""
    if x is None:
        return "–"
    return f"{x:.{decimals(x) if digits is None else digits}f}"


def decimals(x: float) -> int:
    """Decimals that suit a value's size, so a row of mean, CI and std reads at one precision."""
    ax = abs(x)
    return 1 if ax >= 100 else 2 if ax >= 1 else 3


def ci(e: Estimate, digits: int | None = None) -> str:
    """'[low, high]'."""
    return f"[{fmt(e.low, digits)}, {fmt(e.high, digits)}]"


def build_sections(results: Results, figures: Sequence[SavedFigure]) -> list[Section]:
    """The report's content, independent of the output format."""
    o = results.options
    conf = f"{o.confidence:.0%}"
    sections = [_overview(results)]
    if results.issues:
        sections.append(
            Section(
                "Warnings",
                paragraphs=["Check these before using the numbers below."],
                items=[f"{i.path}: {i.message}" for i in results.issues],
                warning=True,
            )
        )
    sections.append(_final_returns(results, conf))
    normalized = _normalized(results, conf)
    if normalized is not None:
        sections.append(normalized)
    improvement = _improvement(results, conf)
    if improvement is not None:
        sections.append(improvement)
    if figures:
        sections.append(Section("Figures", figures=list(figures)))
    if results.failed:
        sections.append(
            Section(
                "Incomplete and failed runs",
                paragraphs=["These runs have no final result and are not in any table or figure."],
                tables=[
                    Table(
                        "",
                        ["Run", "Method", "Environment", "Seed", "Reason"],
                        [
                            [
                                Cell(f.label, code=True),
                                Cell(f.method),
                                Cell(f.env_id),
                                Cell(_seed(f.seed)),
                                Cell(f.reason),
                            ]
                            for f in results.failed
                        ],
                    )
                ],
                warning=True,
            )
        )
    sections.append(_provenance(results))
    return sections


def _overview(results: Results) -> Section:
    n_runs = sum(g.n_runs for g in results.groups)
    o = results.options
    text = (
        f"{n_runs} completed run(s) of {len(results.methods)} method(s) on {len(results.envs)} environment(s)"
        f"; {len(results.failed)} incomplete or failed; {len(results.issues)} warning(s)."
    )
    stat = "interquartile mean (IQM)" if o.curve_stat == "iqm" else "mean"
    method = (
        f"Final return is the mean evaluation return at the end of each run (summary.json). "
        f"Confidence intervals are {o.confidence:.0%} percentile intervals from a stratified bootstrap over "
        f"runs ({o.reps} resamples, seed {o.seed}); learning curves show the {stat} over runs at each step."
    )
    return Section(results.options.title, paragraphs=[text, method])


def _final_returns(results: Results, conf: str) -> Section:
    rows = []
    for env in results.envs:
        groups = results.groups_for(env)
        best = max(g.iqm.point for g in groups) if len(groups) > 1 else None
        for g in groups:
            d = decimals(g.mean.point)
            rows.append(
                [
                    Cell(env),
                    Cell(g.method, bold=g.iqm.point == best),
                    Cell(str(g.n_runs), numeric=True),
                    Cell(fmt(g.mean.point, d), numeric=True),
                    Cell(ci(g.mean, d), numeric=True),
                    Cell(fmt(g.iqm.point, d), numeric=True, bold=g.iqm.point == best),
                    Cell(ci(g.iqm, d), numeric=True),
                    Cell(fmt(g.std, d), numeric=True),
                    Cell(f"{g.steps:,}" if g.steps is not None else "–", numeric=True),
                ]
            )
    table = Table(
        f"Final evaluation return per method and environment ({conf} CIs). Bold: highest IQM.",
        ["Environment", "Method", "Seeds", "Mean", f"{conf} CI", "IQM", f"{conf} CI", "Std", "Steps"],
        rows,
        note="Std is the sample standard deviation over seeds (ddof=1).",
    )
    paragraphs = [] if rows else ["No completed runs."]
    return Section("Final return", paragraphs=paragraphs, tables=[table] if rows else [])


def _normalized(results: Results, conf: str) -> Section | None:
    groups = [g for g in results.groups if g.normalized is not None]
    if not groups:
        return None
    rows = []
    for g in sorted(groups, key=lambda g: (g.env_id, g.method)):
        n = g.normalized
        assert n is not None
        rows.append(
            [
                Cell(g.env_id + (" *" if n.version_differs else "")),
                Cell(g.method),
                Cell(str(g.n_runs), numeric=True),
                Cell(fmt(n.mean.point, 3), numeric=True),
                Cell(ci(n.mean, 3), numeric=True),
                Cell(fmt(n.iqm.point, 3), numeric=True),
                Cell(ci(n.iqm, 3), numeric=True),
            ]
        )
    tables = [
        Table(
            f"Normalised final return: (score − random) / (reference − random); 0 = random policy, 1 = reference ({conf} CIs).",
            ["Environment", "Method", "Seeds", "Mean", f"{conf} CI", "IQM", f"{conf} CI"],
            rows,
            note="* the reference was measured on another version of this environment (see the sources below)."
            if any(g.normalized is not None and g.normalized.version_differs for g in groups)
            else "",
        )
    ]
    if results.aggregates:
        tables.append(
            Table(
                f"Normalised score pooled over environments: IQM over all runs of all listed envs, mean of per-env means ({conf} CIs).",
                ["Method", "Environments", "Runs", "IQM", f"{conf} CI", "Mean", f"{conf} CI"],
                [
                    [
                        Cell(a.method),
                        Cell(", ".join(a.envs)),
                        Cell(str(a.n_runs), numeric=True),
                        Cell(fmt(a.iqm.point, 3), numeric=True),
                        Cell(ci(a.iqm, 3), numeric=True),
                        Cell(fmt(a.mean.point, 3), numeric=True),
                        Cell(ci(a.mean, 3), numeric=True),
                    ]
                    for a in results.aggregates
                ],
                note="Compare methods only over the same set of environments.",
            )
        )
    refs = {g.env_id: g.normalized.reference for g in groups if g.normalized is not None}
    tables.append(
        Table(
            "Reference scores.",
            ["Environment", "Random", "Reference", "Measured on", "Random source", "Reference source"],
            [
                [
                    Cell(env),
                    Cell(fmt(r.random), numeric=True),
                    Cell(fmt(r.reference), numeric=True),
                    Cell(r.measured_on),
                    Cell(r.random_source),
                    Cell(r.reference_source + (f". {r.note}" if r.note else "")),
                ]
                for env, r in sorted(refs.items())
            ],
        )
    )
    return Section("Normalised scores", tables=tables)


def _improvement(results: Results, conf: str) -> Section | None:
    if not results.improvements:
        return None
    rows = [
        [
            Cell(r.env),
            Cell(r.x),
            Cell(r.y),
            Cell(fmt(r.estimate.point, 2), numeric=True, bold=r.estimate.low > 0.5 or r.estimate.high < 0.5),
            Cell(ci(r.estimate, 2), numeric=True),
            Cell(str(r.n_x), numeric=True),
            Cell(str(r.n_y), numeric=True),
        ]
        for r in results.improvements
    ]
    return Section(
        "Probability of improvement",
        paragraphs=[
            "P(X > Y) is the probability that a run of X beats a run of Y on final return (ties count half), "
            f"averaged over environments for the '{ALL_ENVS}' rows. 0.5 means no difference; bold marks a "
            f"{conf} CI that excludes 0.5. Runs of X and Y are resampled independently within each environment."
        ],
        tables=[Table("", ["Environment", "X", "Y", "P(X > Y)", f"{conf} CI", "Runs X", "Runs Y"], rows)],
    )


def _provenance(results: Results) -> Section:
    p = results.provenance
    o = results.options
    machines = Table(
        "Machines (from each run's summary.json).",
        ["CPU", "Cores", "Platform", "Runs"],
        [
            [Cell(m.model), Cell(m.cores, numeric=True), Cell(m.platform), Cell(str(m.runs), numeric=True)]
            for m in p.machines
        ],
    )
    versions = Table(
        "Package versions.",
        ["Package", "Version(s)"],
        [
            [Cell(pkg), Cell(", ".join(v) + (" (differs across runs)" if len(v) > 1 else ""), code=True)]
            for pkg, v in p.versions.items()
        ],
    )
    runs = Table(
        "Runs: the exact command each one ran.",
        ["Environment", "Method", "Seed", "Steps", "Wall time", "Command"],
        [
            [
                Cell(r.env_id),
                Cell(r.method),
                Cell(_seed(r.seed), numeric=True),
                Cell(f"{r.steps:,}" if r.steps is not None else "–", numeric=True),
                Cell(_duration(r.wall_time_s), numeric=True),
                Cell(r.command or "(not recorded)", code=bool(r.command)),
            ]
            for r in p.runs
        ],
    )
    paragraphs = [f"Generated {p.generated}."]
    code = [p.report_command] if p.report_command else []
    settings = (
        f"Bootstrap: {o.reps} resamples, seed {o.seed}, {o.confidence:.0%} percentile intervals; "
        f"curves: {o.curve_stat} on up to {o.points} steps."
    )
    paragraphs.append(settings)
    return Section(
        "Provenance",
        paragraphs=paragraphs,
        code=code,
        tables=[t for t in (machines, versions, runs) if t.rows],
    )


def _seed(seed: int | None) -> str:
    return "–" if seed is None else str(seed)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_cell(c: Cell) -> str:
    text = _md(c.text)
    if c.code and text:
        text = f"`{text}`"
    return f"**{text}**" if c.bold and text else text


def render_markdown(sections: Sequence[Section], figure_dir: str = "figures") -> str:
    """The report as GitHub-flavoured Markdown; figures are linked as figure_dir/<name>.png."""
    out: list[str] = []
    for i, s in enumerate(sections):
        out.append(("# " if i == 0 else "## ") + s.title)
        out.append("")
        for p in s.paragraphs:
            out += [p, ""]
        for item in s.items:
            out.append(f"- {item}")
        if s.items:
            out.append("")
        if s.code:
            out += ["```", *s.code, "```", ""]
        for t in s.tables:
            if t.caption:
                out += [f"*{t.caption}*", ""]
            out.append("| " + " | ".join(_md(h) for h in t.headers) + " |")
            numeric = [c.numeric for c in t.rows[0]] if t.rows else [False] * len(t.headers)
            out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
            for row in t.rows:
                out.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            out.append("")
            if t.note:
                out += [f"<sub>{_md(t.note)}</sub>", ""]
        for f in s.figures:
            out += [
                f"![{_md(f.title)}]({figure_dir}/{f.png.name})",
                "",
                f"*{_md(f.caption)}* ([SVG]({figure_dir}/{f.svg.name}))",
                "",
            ]
    return "\n".join(out).rstrip() + "\n"


# -------------------------------------------------------------------------------------------- HTML

CSS = """
:root { --ink: #1b1b1b; --muted: #5f6368; --rule: #1b1b1b; --light: #e3e3e3; --warn: #b26a00; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 "Source Serif Pro", "Charter", "Georgia", "DejaVu Serif", serif; }
main { max-width: 1100px; margin: 0 auto; padding: 32px 28px 64px; }
h1 { font-size: 28px; margin: 0 0 6px; font-weight: 600; }
h2 { font-size: 20px; margin: 36px 0 10px; font-weight: 600; border-bottom: 1px solid var(--light); padding-bottom: 4px; }
p { margin: 6px 0 10px; }
.lead { color: var(--muted); }
table { border-collapse: collapse; margin: 6px 0 4px; width: 100%;
  font: 13px/1.4 "Helvetica Neue", "Arial", "DejaVu Sans", sans-serif; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-style: italic; color: var(--muted); padding-bottom: 6px;
  font-family: inherit; }
thead th { border-top: 1.5px solid var(--rule); border-bottom: 1px solid var(--rule); font-weight: 600;
  text-align: left; padding: 5px 8px; white-space: nowrap; }
tbody td { padding: 4px 8px; vertical-align: top; }
tbody tr:last-child td { border-bottom: 1.5px solid var(--rule); }
tbody tr.first td { border-top: 1px solid var(--light); }
td.num, th.num { text-align: right; white-space: nowrap; }
td code, pre { font: 12px/1.45 "DejaVu Sans Mono", "Menlo", "Consolas", monospace; }
td code { word-break: break-all; }
pre { background: #f6f6f4; padding: 8px 10px; overflow-x: auto; border-radius: 3px; }
.note { color: var(--muted); font-size: 12px; margin: 2px 0 14px;
  font-family: "Helvetica Neue", "Arial", "DejaVu Sans", sans-serif; }
.warning { border-left: 4px solid var(--warn); background: #fff8ec; padding: 6px 14px 8px; margin-top: 18px; }
.warning h2 { border: none; margin-top: 8px; color: var(--warn); }
.warning li { font: 13px/1.45 "Helvetica Neue", "Arial", "DejaVu Sans", sans-serif; }
.figures { display: flex; flex-wrap: wrap; gap: 18px 26px; }
figure { margin: 0; flex: 1 1 460px; max-width: 100%; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
figcaption b { color: var(--ink); }
"""


def _html_cell(c: Cell, tag: str = "td") -> str:
    text = html.escape(c.text)
    if c.code and text:
        text = f"<code>{text}</code>"
    if c.bold and text:
        text = f"<strong>{text}</strong>"
    cls = ' class="num"' if c.numeric else ""
    return f"<{tag}{cls}>{text}</{tag}>"


def _html_table(t: Table) -> str:
    numeric = [c.numeric for c in t.rows[0]] if t.rows else [False] * len(t.headers)
    head = "".join(_html_cell(Cell(h, numeric=n), tag="th") for h, n in zip(t.headers, numeric, strict=True))
    body = []
    previous_first = None
    for row in t.rows:
        # Rows that share their first column (e.g. one env) form a block, as in a printed table:
        # a rule above the block and the shared value written once.
        first = row[0].text
        repeated = first == previous_first
        cls = ' class="first"' if previous_first is not None and not repeated else ""
        previous_first = first
        cells = [Cell("", numeric=row[0].numeric) if repeated else row[0], *row[1:]]
        body.append(f"<tr{cls}>" + "".join(_html_cell(c) for c in cells) + "</tr>")
    caption = f"<caption>{html.escape(t.caption)}</caption>" if t.caption else ""
    note = f'<p class="note">{html.escape(t.note)}</p>' if t.note else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def _html_figure(f: SavedFigure, number: int) -> str:
    data = base64.b64encode(f.svg_bytes).decode("ascii")
    return (
        f'<figure id="fig-{html.escape(f.name)}"><img alt="{html.escape(f.title)}" '
        f'src="data:image/svg+xml;base64,{data}">'
        f"<figcaption><b>Figure {number}.</b> {html.escape(f.caption)}</figcaption></figure>"
    )


def render_html(sections: Sequence[Section]) -> str:
    """The report as one self-contained HTML page (inline CSS, figures as base64 SVG, no scripts)."""
    parts: list[str] = []
    figure_number = 0
    for i, s in enumerate(sections):
        inner: list[str] = []
        inner.append(f"<h1>{html.escape(s.title)}</h1>" if i == 0 else f"<h2>{html.escape(s.title)}</h2>")
        for j, p in enumerate(s.paragraphs):
            cls = ' class="lead"' if i == 0 and j > 0 else ""
            inner.append(f"<p{cls}>{html.escape(p)}</p>")
        if s.items:
            inner.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in s.items) + "</ul>")
        if s.code:
            inner.append("<pre><code>" + html.escape("\n".join(s.code)) + "</code></pre>")
        inner += [_html_table(t) for t in s.tables]
        if s.figures:
            figs = []
            for f in s.figures:
                figure_number += 1
                figs.append(_html_figure(f, figure_number))
            inner.append('<div class="figures">' + "".join(figs) + "</div>")
        cls = ' class="warning"' if s.warning else ""
        parts.append(f"<section{cls}>" + "\n".join(inner) + "</section>")
    title = html.escape(sections[0].title) if sections else "report"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{CSS}</style></head>\n"
        "<body><main>\n" + "\n".join(parts) + "\n</main></body></html>\n"
    )
