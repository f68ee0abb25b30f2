"""Generate a prior: card -> prompt -> K candidates -> static check -> sandbox probe -> screening -> save.

Each stage only sees the candidates that passed the one before; every candidate's fate (the stage it
stopped at and all its one-line reasons) is kept in a ``<name>.generation.json`` report beside the
saved prior, together with the prompt, the replies' programs and the state of each sandbox wall, so a
prior can be traced back to the exact text the model produced. The report is written when no
candidate survives too (``best`` is null, no ``<name>.py``), so every rejection can be read there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from robolearn.errors import UserError
from robolearn.llm.cards import load_card
from robolearn.llm.checker import check_source
from robolearn.llm.extract import NoCodeBlockError, extract_programs
from robolearn.llm.priors import FORMAT_VERSION, prior_path, validate_name, write_prior
from robolearn.llm.prompt import Message, build_messages, prompt_hash
from robolearn.llm.sandbox import SandboxLimits, SandboxReport, probe_policy
from robolearn.llm.screen import (
    DEFAULT_SCREEN_LIMITS,
    ScreenResult,
    action_bounds,
    make_env,
    sample_observations,
    screen_sources,
)
from robolearn.utils.io import atomic_write_text


class Completer(Protocol):
    """Anything that turns chat messages into ``n`` reply texts (robolearn.llm.client.ChatClient)."""

    def complete(self, messages: list[Message], n: int = 1) -> list[str]:
        """``n`` reply texts."""
        ...


@dataclass
class Candidate:
    """One program (or one reply without a program) and how far it got."""

    index: int
    reply: int
    source: str | None
    stage: str = "pending"  # extract | check | sandbox | screen | screened
    reasons: list[str] = field(default_factory=list)
    sandbox: SandboxReport | None = None
    screen: ScreenResult | None = None

    @property
    def label(self) -> str:
        """'#3' for the table and the report."""
        return f"#{self.index}"


@dataclass
class GenerateOptions:
    """Everything generate_prior needs besides the env and the client."""

    n_candidates: int = 4
    samples: int = 1
    name: str | None = None
    overwrite: bool = False
    screen_episodes: int = 10
    screen_seed: int = 0
    screen_max_steps: int | None = None
    probe_observations: int = 64
    probe_limits: SandboxLimits = field(default_factory=SandboxLimits)
    screen_limits: SandboxLimits = DEFAULT_SCREEN_LIMITS
    reject_out_of_bounds: bool = False
    model: str = "unknown"
    endpoint: str = ""


@dataclass
class GenerateResult:
    """The outcome: all candidates, the winner (if any), where it was saved and the report (written
    whether or not a candidate survived)."""

    env_id: str
    prompt_sha256: str
    candidates: list[Candidate]
    best: Candidate | None
    saved_path: Path | None
    report_path: Path | None


def generate_prior(
    env_id: str, client: Completer, out_root: Path, options: GenerateOptions
) -> GenerateResult:
    """Run the whole pipeline for one env; save the best screened candidate under ``out_root``."""
    if options.n_candidates < 1 or options.samples < 1:
        raise UserError("n_candidates and llm.samples must be at least 1")
    if options.name is not None:
        validate_name(options.name)
    card = load_card(env_id)
    env = make_env(env_id)
    low, high = action_bounds(env)
    env.close()
    if low.shape != (card.action_dim,):
        raise UserError(f"env card {card.path} says {card.action_dim} actions, {env_id} has {low.shape}")
    messages = build_messages(card, options.n_candidates)
    digest = prompt_hash(messages)
    name = _choose_name(out_root, env_id, options, digest)  # a name clash fails before any LLM call
    path = prior_path(out_root, env_id, name)
    report_path = path.with_name(f"{name}.generation.json")

    replies = client.complete(messages, n=options.samples)
    candidates = _candidates_from_replies(replies)

    for cand in _alive(candidates):
        reasons = check_source(cand.source or "")
        if reasons:
            cand.stage, cand.reasons = "check", reasons

    alive = _alive(candidates)
    if alive:
        observations = sample_observations(env_id, options.probe_observations, seed=options.screen_seed)
        workers = max(1, min(len(alive), 4))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            reports = list(
                pool.map(
                    lambda c: probe_policy(
                        c.source or "",
                        observations,
                        low,
                        high,
                        options.probe_limits,
                        reject_out_of_bounds=options.reject_out_of_bounds,
                    ),
                    alive,
                )
            )
        for cand, report in zip(alive, reports, strict=True):
            cand.sandbox = report
            if not report.ok:
                cand.stage, cand.reasons = "sandbox", list(report.reasons)

    alive = _alive(candidates)
    if alive:
        results = screen_sources(
            [(c.label, c.source or "") for c in alive],
            env_id,
            episodes=options.screen_episodes,
            seed=options.screen_seed,
            max_steps=options.screen_max_steps,
            limits=options.screen_limits,
        )
        for cand, result in zip(alive, results, strict=True):
            cand.screen = result
            if result.ok:
                cand.stage = "screened"
            else:
                cand.stage, cand.reasons = "screen", [result.error or "no episodes"]

    screened = [c for c in candidates if c.stage == "screened" and c.screen is not None]
    best = max(screened, key=lambda c: c.screen.mean if c.screen else float("-inf"), default=None)
    if best is None or best.screen is None or best.source is None:
        _write_report(report_path, _report(env_id, messages, digest, options, candidates, None))
        return GenerateResult(env_id, digest, candidates, None, None, report_path)

    today = dt.datetime.now(dt.UTC).replace(microsecond=0)
    header: dict[str, object] = {
        "robolearn-prior": FORMAT_VERSION,
        "env": env_id,
        "name": name,
        "origin": "llm",
        "label": (
            f"written by the LLM {options.model} from the env card; candidate {best.label} of {len(candidates)}, "
            f"chosen by robolearn screening ({len(screened)} passed every check)"
        ),
        "model": options.model,
        "prompt_sha256": digest,
        "created": today.date().isoformat(),
        "endpoint": options.endpoint,
        "screened_return": f"{best.screen.mean:.2f}",
        "screened_return_std": f"{best.screen.std:.2f}",
        "screened_episodes": str(len(best.screen.returns)),
        "screened_seed": str(options.screen_seed),
        "screened_at": today.isoformat(),
    }
    write_prior(path, header, best.source)
    _write_report(report_path, _report(env_id, messages, digest, options, candidates, best))
    return GenerateResult(env_id, digest, candidates, best, path, report_path)


def _candidates_from_replies(replies: list[str]) -> list[Candidate]:
    candidates: list[Candidate] = []
    seen: dict[str, int] = {}
    for r, reply in enumerate(replies):
        try:
            programs = extract_programs(reply)
        except NoCodeBlockError as exc:
            candidates.append(Candidate(len(candidates), r, None, stage="extract", reasons=[str(exc)]))
            continue
        for program in programs:
            cand = Candidate(len(candidates), r, program)
            key = program.strip()
            if key in seen:
                cand.stage, cand.reasons = "extract", [f"duplicate of #{seen[key]}"]
            else:
                seen[key] = cand.index
            candidates.append(cand)
    return candidates


def _alive(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if c.stage == "pending" and c.source is not None]


def _choose_name(out_root: Path, env_id: str, options: GenerateOptions, digest: str) -> str:
    if options.name is not None:
        path = prior_path(out_root, env_id, options.name)
        if path.exists() and not options.overwrite:
            raise UserError(f"prior {path} exists; pass overwrite=true or another name=...")
        return options.name
    model = re.sub(r"[^A-Za-z0-9_-]+", "-", options.model.split("/")[-1]).strip("-_") or "llm"
    base = f"{model[:40]}_{digest[:8]}"
    name, k = base, 2
    # Skip names taken by a prior or by the report of an earlier run that saved nothing.
    while (
        prior_path(out_root, env_id, name).exists()
        or prior_path(out_root, env_id, name).with_name(f"{name}.generation.json").exists()
    ):
        name, k = f"{base}-{k}", k + 1
    return name


def _report(
    env_id: str,
    messages: list[Message],
    digest: str,
    options: GenerateOptions,
    candidates: list[Candidate],
    best: Candidate | None,
) -> dict[str, Any]:
    walls = _first_walls(candidates)
    entries: list[dict[str, Any]] = []
    for c in candidates:
        entry: dict[str, Any] = {
            "candidate": c.label,
            "reply": c.reply,
            "stage": c.stage,
            "reasons": c.reasons,
            "sandbox": c.sandbox.summary() if c.sandbox else None,
            "returns": list(c.screen.returns) if c.screen and c.screen.ok else None,
            "source": c.source,
        }
        for report in (c.sandbox, c.screen):
            if report is not None and report.walls and dict(report.walls) != walls:
                entry["sandbox_walls"] = dict(report.walls)  # only where they differ from the run's
        entries.append(entry)
    return {
        "env_id": env_id,
        "model": options.model,
        "endpoint": options.endpoint,
        "prompt_sha256": digest,
        "messages": messages,
        "best": best.label if best is not None else None,
        "outcome": (
            f"saved {best.label}"
            if best is not None
            else f"none of the {len(candidates)} candidates passed every check; nothing saved"
        ),
        "sandbox_walls": walls or None,
        "screen": {
            "episodes": options.screen_episodes,
            "seed": options.screen_seed,
            "max_steps": options.screen_max_steps,
        },
        "candidates": entries,
    }


def _first_walls(candidates: list[Candidate]) -> dict[str, str]:
    """The sandbox walls the first sandboxed candidate reported (each child states its own)."""
    for c in candidates:
        for report in (c.sandbox, c.screen):
            if report is not None and report.walls:
                return dict(report.walls)
    return {}


def _write_report(path: Path, report: dict[str, Any]) -> None:
    try:
        atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write the generation report {path}: {exc.strerror or exc}") from None


def candidate_table(candidates: list[Candidate]) -> str:
    """A plain-text table: one line per candidate with its stage and return or first reason."""
    lines = [f"{'cand':<6}{'reply':<7}{'stage':<10}result"]
    for c in candidates:
        if c.stage == "screened" and c.screen is not None:
            result = f"return {c.screen.mean:.1f} +- {c.screen.std:.1f} over {len(c.screen.returns)} episodes"
        else:
            more = f" (+{len(c.reasons) - 1} more)" if len(c.reasons) > 1 else ""
            result = (c.reasons[0] if c.reasons else "") + more
        lines.append(f"{c.label:<6}{c.reply:<7}{c.stage:<10}{result}")
    return "\n".join(lines)
