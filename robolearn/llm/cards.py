"""Env cards: the structured task description an LLM reads (envs/cards/<EnvId>.yaml), with validation.

A card names every observation index (one index, or an inclusive ``indices: [first, last]`` range for
blocks such as Ant's contact forces), every action dimension with its bounds, the reward terms,
termination and the goal. Validation checks types and that the observation terms tile
``0 .. obs_dim - 1`` exactly, so a card that skips or repeats an index fails before any prompt is built.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

from robolearn.errors import UserError, close_matches
from robolearn.resources import envs_dir

CARD_SCHEMA_VERSION = 1

_TOP_KEYS = {
    "schema_version",
    "env_id",
    "title",
    "source",
    "description",
    "goal",
    "control",
    "observation",
    "action",
    "reward",
    "termination",
    "truncation",
    "episode_steps",
    "starting_state",
    "hints",
}
_REQUIRED_TOP = _TOP_KEYS - {"hints", "starting_state"}


@dataclass(frozen=True)
class ObservationTerm:
    """One observation index, or an inclusive block of indices described together."""

    first: int
    last: int
    name: str
    meaning: str
    unit: str
    low: float | None = None
    high: float | None = None

    @property
    def index_label(self) -> str:
        """'3' for a single index, '27-104' for a block."""
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


@dataclass(frozen=True)
class ActionDim:
    """One action dimension with its bounds."""

    index: int
    name: str
    meaning: str
    unit: str
    low: float
    high: float


@dataclass(frozen=True)
class RewardTerm:
    """One named term of the reward."""

    name: str
    formula: str
    meaning: str


@dataclass(frozen=True)
class EnvCard:
    """A validated env card."""

    env_id: str
    title: str
    source: str
    description: str
    goal: str
    control_dt_s: float
    control_notes: str
    obs_dim: int
    obs_dtype: str
    obs_notes: str
    obs_terms: tuple[ObservationTerm, ...]
    action_dim: int
    action_notes: str
    action_dims: tuple[ActionDim, ...]
    reward_summary: str
    reward_terms: tuple[RewardTerm, ...]
    termination: tuple[str, ...]
    truncation: str
    episode_steps: int
    starting_state: str
    hints: tuple[str, ...]
    path: Path

    @property
    def action_low(self) -> list[float]:
        """Lower bound of each action dimension."""
        return [d.low for d in self.action_dims]

    @property
    def action_high(self) -> list[float]:
        """Upper bound of each action dimension."""
        return [d.high for d in self.action_dims]


def cards_dir() -> Path:
    """The folder of shipped env cards (envs/cards/)."""
    return envs_dir() / "cards"


def card_filename(env_id: str) -> str:
    """The card file name for an env id: '/' in namespaced ids becomes '_' (as for prior folders)."""
    return sanitize_env_id(env_id) + ".yaml"


def sanitize_env_id(env_id: str) -> str:
    """A folder/file-safe form of an env id: 'robolearn/Go2Velocity-v1' -> 'robolearn_Go2Velocity-v1'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", env_id.strip())
    if not cleaned or set(cleaned) <= {".", "_"}:
        raise UserError(f"env id {env_id!r} is empty after sanitising; pass an id like Hopper-v5")
    return cleaned


def available_cards() -> list[str]:
    """Env ids that have a shipped card."""
    out = []
    for path in sorted(cards_dir().glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("env_id"), str):
            out.append(data["env_id"])
    return out


def load_card(env_id_or_path: str | Path) -> EnvCard:
    """Load and validate the card for an env id (from envs/cards/) or from a .yaml path."""
    candidate = Path(env_id_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        path = candidate.expanduser()
        if not path.is_file():
            raise UserError(f"env card {path} does not exist")
    else:
        env_id = str(env_id_or_path)
        path = cards_dir() / card_filename(env_id)
        if not path.is_file():
            known = available_cards()
            raise UserError(
                f"no env card for {env_id!r} in {cards_dir()}{close_matches(env_id, known)}; "
                f"cards exist for: {', '.join(known) or 'none'}"
            )
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: not valid YAML ({first_line})") from None
    card = parse_card(data, path)
    if candidate.suffix not in {".yaml", ".yml"} and card.env_id != str(env_id_or_path):
        raise UserError(f"{path}: env_id is {card.env_id!r}, expected {str(env_id_or_path)!r}")
    return card


def parse_card(data: object, path: Path) -> EnvCard:
    """Validate a parsed card mapping; UserError names the file and the bad key."""
    v = _Validator(path)
    top = v.mapping(data, "card")
    unknown = set(top) - _TOP_KEYS
    if unknown:
        name = sorted(unknown)[0]
        v.fail(name, f"unknown key{close_matches(name, _TOP_KEYS)}")
    for key in sorted(_REQUIRED_TOP):
        if key not in top:
            v.fail(key, "missing")
    if top["schema_version"] != CARD_SCHEMA_VERSION:
        v.fail("schema_version", f"is {top['schema_version']!r}, this robolearn reads {CARD_SCHEMA_VERSION}")

    control = v.mapping(top["control"], "control")
    dt = v.number(control.get("dt_s"), "control.dt_s")
    if dt <= 0:
        v.fail("control.dt_s", "must be positive")

    obs = v.mapping(top["observation"], "observation")
    obs_dim = v.shape1(obs.get("shape"), "observation.shape")
    obs_terms = tuple(
        _obs_term(v, item, f"observation.terms[{i}]")
        for i, item in enumerate(v.sequence(obs.get("terms"), "observation.terms"))
    )
    covered: list[int] = []
    for term in obs_terms:
        covered.extend(range(term.first, term.last + 1))
    if sorted(covered) != list(range(obs_dim)):
        missing = sorted(set(range(obs_dim)) - set(covered))
        repeated = sorted({i for i in covered if covered.count(i) > 1})
        extra = sorted(i for i in set(covered) if i >= obs_dim)
        detail = "; ".join(
            part
            for part in (
                f"missing {_ranges(missing)}" if missing else "",
                f"repeated {_ranges(repeated)}" if repeated else "",
                f"beyond the shape {_ranges(extra)}" if extra else "",
            )
            if part
        )
        v.fail("observation.terms", f"must cover indices 0-{obs_dim - 1} exactly once ({detail})")

    act = v.mapping(top["action"], "action")
    action_dim = v.shape1(act.get("shape"), "action.shape")
    dims = tuple(
        _action_dim(v, item, f"action.dims[{i}]")
        for i, item in enumerate(v.sequence(act.get("dims"), "action.dims"))
    )
    if [d.index for d in dims] != list(range(action_dim)):
        v.fail("action.dims", f"must list indices 0-{action_dim - 1} in order, one entry each")

    reward = v.mapping(top["reward"], "reward")
    reward_terms = tuple(
        RewardTerm(
            name=v.text(item.get("name"), f"reward.terms[{i}].name"),
            formula=v.text(item.get("formula"), f"reward.terms[{i}].formula"),
            meaning=v.text(item.get("meaning"), f"reward.terms[{i}].meaning"),
        )
        for i, raw in enumerate(v.sequence(reward.get("terms"), "reward.terms"))
        for item in [v.mapping(raw, f"reward.terms[{i}]")]
    )
    termination = tuple(
        v.text(item, f"termination[{i}]")
        for i, item in enumerate(v.sequence(top["termination"], "termination"))
    )
    hints_raw = top.get("hints") or []
    hints = tuple(v.text(item, f"hints[{i}]") for i, item in enumerate(v.sequence(hints_raw, "hints", True)))
    steps = top["episode_steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        v.fail("episode_steps", "must be a positive integer")

    return EnvCard(
        env_id=v.text(top["env_id"], "env_id"),
        title=v.text(top["title"], "title"),
        source=v.text(top["source"], "source"),
        description=v.text(top["description"], "description"),
        goal=v.text(top["goal"], "goal"),
        control_dt_s=dt,
        control_notes=v.text(control.get("notes", ""), "control.notes", allow_empty=True),
        obs_dim=obs_dim,
        obs_dtype=v.text(obs.get("dtype"), "observation.dtype"),
        obs_notes=v.text(obs.get("notes", ""), "observation.notes", allow_empty=True),
        obs_terms=obs_terms,
        action_dim=action_dim,
        action_notes=v.text(act.get("notes", ""), "action.notes", allow_empty=True),
        action_dims=dims,
        reward_summary=v.text(reward.get("summary"), "reward.summary"),
        reward_terms=reward_terms,
        termination=termination,
        truncation=v.text(top["truncation"], "truncation"),
        episode_steps=steps,
        starting_state=v.text(top.get("starting_state", ""), "starting_state", allow_empty=True),
        hints=hints,
        path=path,
    )


def _obs_term(v: _Validator, raw: object, where: str) -> ObservationTerm:
    item = v.mapping(raw, where)
    if ("index" in item) == ("indices" in item):
        v.fail(where, "needs exactly one of 'index' (one int) or 'indices' ([first, last], inclusive)")
    if "index" in item:
        first = last = v.integer(item["index"], f"{where}.index")
    else:
        pair = v.sequence(item["indices"], f"{where}.indices")
        if len(pair) != 2:
            v.fail(f"{where}.indices", "must be [first, last]")
        first = v.integer(pair[0], f"{where}.indices[0]")
        last = v.integer(pair[1], f"{where}.indices[1]")
        if last < first:
            v.fail(f"{where}.indices", "last is before first")
    low = v.number(item["low"], f"{where}.low") if "low" in item else None
    high = v.number(item["high"], f"{where}.high") if "high" in item else None
    if low is not None and high is not None and not low <= high:
        v.fail(where, f"low {low} is above high {high}")
    return ObservationTerm(
        first=first,
        last=last,
        name=v.text(item.get("name"), f"{where}.name"),
        meaning=v.text(item.get("meaning"), f"{where}.meaning"),
        unit=v.text(item.get("unit"), f"{where}.unit"),
        low=low,
        high=high,
    )


def _action_dim(v: _Validator, raw: object, where: str) -> ActionDim:
    item = v.mapping(raw, where)
    low = v.number(item.get("low"), f"{where}.low")
    high = v.number(item.get("high"), f"{where}.high")
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        v.fail(where, f"bounds must be finite with low < high (got {low}, {high})")
    return ActionDim(
        index=v.integer(item.get("index"), f"{where}.index"),
        name=v.text(item.get("name"), f"{where}.name"),
        meaning=v.text(item.get("meaning"), f"{where}.meaning"),
        unit=v.text(item.get("unit"), f"{where}.unit"),
        low=low,
        high=high,
    )


def _ranges(indices: list[int]) -> str:
    """Compact '1-3, 7' form of a sorted index list."""
    groups: list[list[int]] = []
    for i in indices:
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    return ", ".join(str(g[0]) if len(g) == 1 else f"{g[0]}-{g[-1]}" for g in groups)


class _Validator:
    """Type checks that raise one-line UserErrors naming the card file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise UserError(f"env card {self.path}: {where}: {problem}")

    def mapping(self, value: object, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"must be a mapping, got {type(value).__name__}")
        return value

    def sequence(self, value: object, where: str, allow_empty: bool = False) -> list[Any]:
        if not isinstance(value, list) or (not value and not allow_empty):
            self.fail(where, "must be a non-empty list")
        return value

    def text(self, value: object, where: str, allow_empty: bool = False) -> str:
        if not isinstance(value, str) or (not value.strip() and not allow_empty):
            self.fail(
                where, "must be a non-empty string" if value is None else f"must be a string, got {value!r}"
            )
        return str(value).strip()

    def integer(self, value: object, where: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            self.fail(where, f"must be a non-negative integer, got {value!r}")
        return int(value)

    def number(self, value: object, where: str) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            self.fail(where, f"must be a number, got {value!r}")
        return float(value)

    def shape1(self, value: object, where: str) -> int:
        seq = self.sequence(value, where)
        if len(seq) != 1:
            self.fail(where, "must be a one-dimensional shape like [11]")
        dim = self.integer(seq[0], f"{where}[0]")
        if dim == 0:
            self.fail(where, "must be positive")
        return dim
