"""Prior files: one Python program per prior with a provenance header, shipped and per-user folders.

A prior file starts with a header of ``# key: value`` comment lines, ended by the first blank line,
followed by the program (which must define ``policy(obs)``)::

    # robolearn-prior: 1
    # env: Hopper-v5
    # name: hop_pd
    # origin: hand-written | llm
    # label: written by the robolearn developers from the card, not by an LLM (...)
    # model: none | <model id>
    # prompt_sha256: <sha256 of the prompt messages>
    # created: 2025-01-01
    # screened_return: 1234.5          (after screening)
    # screened_return_std: 10.2
    # screened_episodes: 10
    # screened_seed: 0
    # screened_at: 2025-01-01T12:00:00+00:00
    # env_kwargs: {"gait_period_s": 0.5}   (optional: env options the prior's observation needs)

    import numpy as np
    def policy(obs): ...

Priors live in ``<root>/<sanitised env id>/<name>.py`` under two roots, both searched: the shipped
``policies/priors/`` (robolearn.resources.policies_dir()) and a user folder (``~/.robolearn/priors/``
unless configured or set by ROBOLEARN_PRIORS_DIR). A name found in both is an error that names both
paths, so a run never silently picks one.

A prior whose observation layout depends on env options (a gait clock adds two values) names them in
``env_kwargs`` (a JSON object): the probe and screening make the env with them, and a run whose env
options differ is refused with a one-line error naming the option.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import UserError, close_matches
from robolearn.llm.cards import sanitize_env_id
from robolearn.llm.checker import check_source
from robolearn.llm.runtime import CompiledPrior, PriorError, compile_prior
from robolearn.llm.sandbox import SandboxLimits, probe_policy
from robolearn.resources import policies_dir

FORMAT_VERSION = "1"
USER_DIR_ENV = "ROBOLEARN_PRIORS_DIR"
DEFAULT_USER_DIR = "~/.robolearn/priors"

_REQUIRED_KEYS = ("robolearn-prior", "env", "name", "origin", "label", "model", "prompt_sha256", "created")
_SCREEN_KEYS = ("screened_return", "screened_return_std", "screened_episodes", "screened_seed", "screened_at")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_HEADER_LINE = re.compile(r"^#\s*([A-Za-z0-9_-]+)\s*:\s*(.*?)\s*$")

HAND_WRITTEN_LABEL = (
    "written by the robolearn developers from the env card, not by an LLM "
    "(the build machines cannot reach an LLM)"
)


@dataclass(frozen=True)
class PriorFile:
    """A parsed prior file: its header and its full text (the text is the program)."""

    path: Path
    header: dict[str, str]
    text: str
    location: str  # "shipped", "user" or "path"

    @property
    def env_id(self) -> str:
        """The env id the prior was written for."""
        return self.header["env"]

    @property
    def name(self) -> str:
        """The prior's name (its file stem)."""
        return self.header["name"]

    @property
    def env_kwargs(self) -> dict[str, Any]:
        """Env options the prior needs (its header's env_kwargs JSON object; empty when absent)."""
        raw = self.header.get("env_kwargs")
        return dict(json.loads(raw)) if raw else {}

    @property
    def screened_return(self) -> float | None:
        """The recorded mean screening return, or None if never screened."""
        value = self.header.get("screened_return")
        return float(value) if value not in (None, "") else None


@dataclass(frozen=True)
class LoadedPrior:
    """A prior file that passed the checks, with its in-process callable."""

    file: PriorFile
    policy: CompiledPrior


def shipped_dir() -> Path:
    """The shipped priors root (policies/priors/)."""
    return policies_dir() / "priors"


def user_dir(configured: str | os.PathLike[str] | None = None) -> Path:
    """The user priors root: the configured path, else $ROBOLEARN_PRIORS_DIR, else ~/.robolearn/priors."""
    raw = configured if configured not in (None, "") else os.environ.get(USER_DIR_ENV) or DEFAULT_USER_DIR
    return Path(str(raw)).expanduser()


def prior_path(root: Path, env_id: str, name: str) -> Path:
    """Where prior ``name`` for ``env_id`` lives under ``root``."""
    validate_name(name)
    return root / sanitize_env_id(env_id) / f"{name}.py"


def validate_name(name: str) -> str:
    """A prior name: letters, digits, '_' and '-', starting with a letter or digit."""
    if not _NAME_RE.match(name):
        raise UserError(
            f"prior name {name!r} must be letters, digits, '_' or '-' (and start with a letter or digit)"
        )
    return name


def render_header(header: Mapping[str, object]) -> str:
    """Header lines for a prior file, required keys first, ending with the blank separator line."""
    keys = [k for k in _REQUIRED_KEYS if k in header] + [k for k in header if k not in _REQUIRED_KEYS]
    lines = []
    for key in keys:
        value = " ".join(str(header[key]).split())  # one line per value, whatever it held
        lines.append(f"# {key}: {value}")
    return "\n".join(lines) + "\n\n"


def parse_prior_text(text: str, path: Path, location: str = "path") -> PriorFile:
    """Parse and validate a prior file's header; UserError names the file and the problem."""
    header: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        match = _HEADER_LINE.match(line)
        if match is None:
            raise UserError(
                f"prior {path}: header line {line[:60]!r} is not '# key: value' (end the header with a blank line)"
            )
        header[match.group(1)] = match.group(2)
    missing = [k for k in _REQUIRED_KEYS if not header.get(k)]
    if missing:
        raise UserError(f"prior {path}: header is missing {', '.join(missing)}")
    if header["robolearn-prior"] != FORMAT_VERSION:
        raise UserError(
            f"prior {path}: format version {header['robolearn-prior']!r}, this robolearn reads {FORMAT_VERSION}"
        )
    validate_name(header["name"])
    if header.get("env_kwargs"):
        try:
            kwargs = json.loads(header["env_kwargs"])
        except json.JSONDecodeError:
            kwargs = None
        if not isinstance(kwargs, dict):
            raise UserError(
                f"prior {path}: env_kwargs {header['env_kwargs']!r} is not a JSON object such as"
                ' {"gait_period_s": 0.5}'
            )
    if header.get("screened_return"):
        try:
            float(header["screened_return"])
        except ValueError:
            raise UserError(
                f"prior {path}: screened_return {header['screened_return']!r} is not a number"
            ) from None
    return PriorFile(path=path, header=header, text=text, location=location)


def read_prior(path: Path, location: str = "path") -> PriorFile:
    """Read and parse one prior file."""
    if not path.is_file():
        raise UserError(f"prior file {path} does not exist")
    prior = parse_prior_text(path.read_text(), path, location)
    if path.stem != prior.name:
        raise UserError(f"prior {path}: header name {prior.name!r} does not match the file name")
    return prior


def write_prior(path: Path, header: Mapping[str, object], code: str) -> Path:
    """Write a prior file (header + code) atomically, creating folders as needed."""
    body = code.strip("\n") + "\n"
    text = render_header(header) + body
    parse_prior_text(text, path)  # never write a file this module cannot read back
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".py.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write prior {path}: {exc.strerror or exc}") from None
    return path


def prior_code(prior: PriorFile) -> str:
    """The program after the header."""
    _, _, code = prior.text.partition("\n\n")
    return code


def update_screening(
    prior: PriorFile, returns: list[float], seed: int, extra: Mapping[str, str] | None = None
) -> PriorFile:
    """Record new screening figures (and any `extra` header keys, e.g. the screen's baselines) in a
    prior's header, keeping everything else, and rewrite it once."""
    header = dict(prior.header)
    header.update(
        screened_return=f"{float(np.mean(returns)):.2f}",
        screened_return_std=f"{float(np.std(returns)):.2f}",
        screened_episodes=str(len(returns)),
        screened_seed=str(seed),
        screened_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    )
    header.update(extra or {})
    write_prior(prior.path, header, prior_code(prior))
    return read_prior(prior.path, prior.location)


def list_priors(
    env_id: str | None = None, user_root: str | os.PathLike[str] | None = None
) -> list[PriorFile]:
    """Every prior under the shipped and user roots (optionally for one env), shipped first."""
    out: list[PriorFile] = []
    roots = [("shipped", shipped_dir()), ("user", user_dir(user_root))]
    for location, root in roots:
        if not root.is_dir():
            continue
        folders = (
            [root / sanitize_env_id(env_id)] if env_id else sorted(p for p in root.iterdir() if p.is_dir())
        )
        for folder in folders:
            for path in sorted(folder.glob("*.py")):
                out.append(read_prior(path, location))
    return out


def find_prior(
    ref: str, env_id: str | None = None, user_root: str | os.PathLike[str] | None = None
) -> PriorFile:
    """A prior by path (anything ending in .py) or by name ('name' or '<env folder>/name')."""
    if ref.endswith(".py"):
        return read_prior(Path(ref).expanduser())
    folder, _, name = ref.rpartition("/")
    candidates = [
        p
        for p in list_priors(env_id, user_root)
        if p.name == name and (not folder or p.path.parent.name == sanitize_env_id(folder))
    ]
    if not candidates:
        known = sorted({p.name for p in list_priors(env_id, user_root)})
        where = f" for {env_id}" if env_id else ""
        raise UserError(
            f"no prior named {ref!r}{where} in {shipped_dir()} or {user_dir(user_root)}{close_matches(name, known)}"
        )
    if len(candidates) > 1:
        paths = ", ".join(str(p.path) for p in candidates)
        raise UserError(f"prior name {ref!r} is ambiguous ({paths}); pass env=... or a path")
    return candidates[0]


def load_prior(
    ref: str | Path,
    env_id: str | None = None,
    user_root: str | os.PathLike[str] | None = None,
    probe: bool = True,
    limits: SandboxLimits | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> LoadedPrior:
    """Find a prior, run the static check (and the sandbox probe), and compile it for in-process use.

    `env_kwargs` are the run's env options: they must agree with the prior's own env_kwargs header
    (a gait clock changes the observation the prior reads), and the probe samples observations from
    the env made with them (with the prior's own when None).

    A prior that fails any check raises PriorError (a UserError) with a one-line reason.
    """
    from robolearn.llm.screen import action_bounds, make_env, sample_observations

    prior = find_prior(str(ref), env_id, user_root)
    if env_id is not None and prior.env_id != env_id:
        raise UserError(f"prior {prior.path} is for {prior.env_id}, not {env_id}")
    reasons = check_source(prior.text)
    if reasons:
        more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
        raise PriorError(f"prior {prior.path} fails the checker: {reasons[0]}{more}")
    needed = prior.env_kwargs
    if env_kwargs is not None:
        for key, value in needed.items():
            if env_kwargs.get(key) != value:
                raise PriorError(
                    f"prior {prior.path} needs env.kwargs.{key}={json.dumps(value)}, but the run has"
                    f" {json.dumps(env_kwargs.get(key))}; set +env.kwargs.{key}={json.dumps(value)} or pick another prior"
                )
    kwargs = needed if env_kwargs is None else dict(env_kwargs)
    env = make_env(prior.env_id, kwargs)
    low, high = action_bounds(env)
    env.close()
    if probe:
        samples = sample_observations(prior.env_id, 32, env_kwargs=kwargs)
        report = probe_policy(prior.text, samples, low, high, limits)
        if not report.ok:
            raise PriorError(f"prior {prior.path} fails the sandbox: {report.reasons[0]}")
    return LoadedPrior(file=prior, policy=compile_prior(prior.text, low, high, name=prior.name))
