"""The prompt that asks an LLM for K candidate prior policies, built from an env card.

The messages are a pure function of the card and K, so their sha256 (``prompt_hash``) identifies the
prompt in every prior file's provenance header.
"""

from __future__ import annotations

import hashlib
import json
import math

from robolearn.llm.cards import EnvCard
from robolearn.llm.checker import ALLOWED_BUILTINS, allowed_math_names, allowed_numpy_names

Message = dict[str, str]

PROMPT_VERSION = 1

_SYSTEM = """\
You are an expert in robot control. You write small, deterministic Python controllers that are used \
as prior policies to guide reinforcement learning. Your code is checked by a strict static \
allow-list and then run in a sandbox; anything outside the rules below is rejected.

Rules for every program:
- Define exactly one function `def policy(obs: np.ndarray) -> np.ndarray` at top level. It receives \
one observation (a 1-D numpy array) and returns one action as a 1-D numpy float array of the action \
shape, inside the action bounds. It must be fast (well under a millisecond) and deterministic.
- You may define helper functions and UPPER_CASE module-level constants. Module-level names must not \
be modified by `policy`: it is a pure function of `obs` (no memory between calls, no randomness).
- The only imports allowed are `import numpy as np` and `import math`.
- Allowed numpy names: {numpy_names}.
- Allowed math names: {math_names}.
- Allowed builtins: {builtins}.
- Array methods and attributes such as `.shape`, `.copy()`, `.astype()`, `.reshape()`, `.clip()`, \
`.sum()` are allowed.
- Forbidden: any other import, file or network access, printing, classes, try/except, global or \
nonlocal statements, eval/exec/getattr and similar, and any name or attribute that starts with an \
underscore.
"""

_USER = """\
Write {k} different candidate controllers for the task below. Make them genuinely different \
approaches (for example different feedback laws, gains or gait patterns), each a plausible \
good policy on its own.

Return each program in its own fenced code block that starts with ```python. Each block must be a \
complete program (imports, constants, helpers and `policy`). Put a one-line comment at the top of \
each block naming the idea.

{card}
"""


def build_messages(card: EnvCard, n_candidates: int) -> list[Message]:
    """System + user chat messages asking for ``n_candidates`` programs for the card's task."""
    if n_candidates < 1:
        raise ValueError("n_candidates must be at least 1")
    system = _SYSTEM.format(
        numpy_names=", ".join(f"np.{n}" for n in allowed_numpy_names()),
        math_names=", ".join(f"math.{n}" for n in allowed_math_names()),
        builtins=", ".join(sorted(ALLOWED_BUILTINS)),
    )
    user = _USER.format(k=n_candidates, card=render_card(card))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def prompt_hash(messages: list[Message]) -> str:
    """sha256 of the messages as canonical JSON (sorted keys, no whitespace): stable across runs."""
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def render_card(card: EnvCard) -> str:
    """The card as markdown: every observation index and action dimension in a table."""
    lines = [
        f"# Task: {card.title} (`{card.env_id}`)",
        "",
        card.description,
        "",
        f"**Goal.** {card.goal}",
        "",
        f"**Control period.** {card.control_dt_s:g} s per step. {card.control_notes}".rstrip(),
        "",
        f"## Observation: shape ({card.obs_dim},), {card.obs_dtype}",
        "",
    ]
    if card.obs_notes:
        lines += [card.obs_notes, ""]
    lines += ["| index | name | meaning | unit | bounds |", "|---|---|---|---|---|"]
    for term in card.obs_terms:
        lines.append(
            f"| {term.index_label} | {term.name} | {term.meaning} | {term.unit} | {_bounds(term.low, term.high)} |"
        )
    lines += ["", f"## Action: shape ({card.action_dim},)", ""]
    if card.action_notes:
        lines += [card.action_notes, ""]
    lines += ["| index | name | meaning | unit | low | high |", "|---|---|---|---|---|---|"]
    for dim in card.action_dims:
        lines.append(
            f"| {dim.index} | {dim.name} | {dim.meaning} | {dim.unit} | {dim.low:g} | {dim.high:g} |"
        )
    lines += ["", f"## Reward: {card.reward_summary}", ""]
    for reward in card.reward_terms:
        lines.append(f"- **{reward.name}** = {reward.formula}: {reward.meaning}")
    lines += ["", "## Episode end", ""]
    lines += [f"- Termination: {item}" for item in card.termination]
    lines.append(f"- Truncation: {card.truncation} (episode length {card.episode_steps} steps)")
    if card.starting_state:
        lines += ["", f"**Starting state.** {card.starting_state}"]
    if card.hints:
        lines += ["", "## Hints", ""]
        lines += [f"- {hint}" for hint in card.hints]
    return "\n".join(lines) + "\n"


def _bounds(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "unbounded"
    lo = "-inf" if low is None or math.isinf(low) else f"{low:g}"
    hi = "inf" if high is None or math.isinf(high) else f"{high:g}"
    return f"[{lo}, {hi}]"
