"""CAMEL prior policies from the command line: generate with an LLM, screen, list.

    python -m robolearn.prior action=generate env=Hopper-v5 llm.base_url=http://localhost:8000/v1 llm.model=<m>
    python -m robolearn.prior action=screen env=Hopper-v5 prior=hopper_balance_pd
    python -m robolearn.prior action=list [env=Hopper-v5]

``env=`` picks an entry of the ``configs/env`` group, as for ``robolearn.train``; its ``id`` is the
gymnasium id. ``env_id=<id>`` names an id directly, for envs without a config entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from robolearn.cli import hydra_verb, verb_help
from robolearn.config.schema import EnvConfig, register_schemas
from robolearn.errors import UserError, require_extra
from robolearn.llm.sandbox import SandboxLimits

if TYPE_CHECKING:
    from robolearn.llm.screen import ScreenResult

ACTIONS = ("generate", "screen", "list")


@dataclass
class LLMConfig:
    """Endpoint settings; empty values fall back to ROBOLEARN_LLM_BASE_URL / _API_KEY / _MODEL."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    timeout_s: float = 120.0
    retries: int = 3
    backoff_s: float = 2.0
    temperature: float = 0.8
    max_tokens: int = 4096
    samples: int = 1  # replies requested; each reply is asked for n_candidates programs


@dataclass
class ScreenConfig:
    """Rollout screening: seeded episodes per candidate and the rollout child's limits."""

    episodes: int = 10
    seed: int = 0  # episode i resets with seed + i
    max_steps: int | None = None  # None keeps the env's time limit
    record: bool = True  # action=screen: write the new return into the prior's header
    cpu_s: float = 300.0
    memory_mb: float = 1024.0
    wall_s: float = 600.0


@dataclass
class SandboxConfig:
    """Limits of the probe that runs each candidate on sampled observations."""

    cpu_s: float = 10.0
    memory_mb: float = 1024.0
    wall_s: float = 60.0
    call_budget_ms: float = 5.0
    probe_obs: int = 64
    reject_out_of_bounds: bool = False  # False: out-of-bound actions are clipped and reported


@dataclass
class PriorCommandConfig:
    """Schema of configs/prior.yaml."""

    action: str = "list"
    env: EnvConfig | None = None  # set by env=<configs/env entry>
    env_id: str | None = None  # a gymnasium id without a configs/env entry
    prior: str | None = None  # action=screen: a prior name or a path to a .py file
    name: str | None = None  # action=generate: the saved prior's name (default <model>_<prompt hash>)
    overwrite: bool = False
    n_candidates: int = 4
    out_dir: str | None = None  # action=generate: where to save (default: user_dir)
    user_dir: str | None = None  # user priors root (default $ROBOLEARN_PRIORS_DIR or ~/.robolearn/priors)
    llm: LLMConfig = field(default_factory=LLMConfig)
    screen: ScreenConfig = field(default_factory=ScreenConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)


def register_prior_schema() -> None:
    """Register the prior command's schema (and the project's env schema it uses) with Hydra."""
    register_schemas()
    ConfigStore.instance().store(name="prior_schema", node=PriorCommandConfig)


register_prior_schema()


def resolve_env_id(cfg: Any) -> str | None:
    """The gymnasium id from env=<entry> or env_id=<id>; UserError when both disagree or kwargs are set."""
    entry = cfg.get("env")
    direct = cfg.get("env_id")
    from_entry = entry.id if entry is not None else None
    if from_entry and direct and from_entry != direct:
        raise UserError(f"env={from_entry} and env_id={direct} disagree; pass one of them")
    if entry is not None and entry.get("kwargs"):
        # Cards, prompts and recorded returns describe the env with its default arguments.
        raise UserError(
            f"priors use {from_entry} with default arguments, but its config sets kwargs "
            f"{OmegaConf.to_container(entry.kwargs)}; pass env_id={from_entry} instead"
        )
    return from_entry or direct


def run(cfg: DictConfig) -> int:
    """Execute one prior command from a composed config; returns the exit code."""
    validate_prior_config(cfg)
    env_id = resolve_env_id(cfg)
    if cfg.action == "list":
        return _list(env_id, cfg)
    if cfg.action == "screen":
        return _screen(env_id, cfg)
    return _generate(env_id, cfg)


def _list(env_id: str | None, cfg: DictConfig) -> int:
    from robolearn.llm.priors import list_priors, shipped_dir, user_dir

    priors = list_priors(env_id, cfg.user_dir)
    rows = [("env", "name", "where", "origin", "return", "episodes", "model")]
    for p in priors:
        ret = p.screened_return
        rows.append(
            (
                p.env_id,
                p.name,
                p.location,
                p.header["origin"],
                "-" if ret is None else f"{ret:.1f} +- {float(p.header.get('screened_return_std') or 0):.1f}",
                p.header.get("screened_episodes", "-"),
                p.header["model"],
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"\n{len(priors)} prior(s); shipped: {shipped_dir()}, user: {user_dir(cfg.user_dir)}")
    return 0


def _screen(env_id: str | None, cfg: DictConfig) -> int:
    from robolearn.llm.priors import find_prior, load_prior, update_screening
    from robolearn.llm.screen import BASELINE_AGENTS, baseline_rollouts, screen_sources

    if not cfg.prior:
        raise UserError("action=screen needs prior=<name or path to a .py file>")
    prior = find_prior(cfg.prior, env_id, cfg.user_dir)
    load_prior(str(prior.path), env_id, cfg.user_dir, probe=True, limits=_probe_limits(cfg))
    limits = SandboxLimits(cpu_s=cfg.screen.cpu_s, memory_mb=cfg.screen.memory_mb, wall_s=cfg.screen.wall_s)
    (result,) = screen_sources(
        [(prior.name, prior.text)],
        prior.env_id,
        episodes=cfg.screen.episodes,
        seed=cfg.screen.seed,
        max_steps=cfg.screen.max_steps,
        limits=limits,
        env_kwargs=prior.env_kwargs,
    )
    if not result.ok:
        raise UserError(f"prior {prior.path} failed screening: {result.error}")
    # The baselines play the same reset seeds, so each row differs from the prior's only by the agent.
    baselines = [
        baseline_rollouts(
            prior.env_id, agent, cfg.screen.episodes, cfg.screen.seed, cfg.screen.max_steps, prior.env_kwargs
        )
        for agent in BASELINE_AGENTS
    ]
    last_seed = cfg.screen.seed + len(result.returns) - 1
    print(
        f"{prior.env_id} {prior.name}: return {result.mean:.2f} +- {result.std:.2f}, "
        f"length {result.mean_length:.1f} over {len(result.returns)} episodes (seeds {cfg.screen.seed}-{last_seed})"
    )
    for baseline in baselines:
        print(
            f"  {baseline.name} policy: return {baseline.mean:.2f} +- {baseline.std:.2f}, "
            f"length {baseline.mean_length:.1f}"
        )
    if cfg.screen.record and cfg.screen.max_steps is None:
        try:
            update_screening(
                prior, list(result.returns), cfg.screen.seed, extra=_screen_figures(result, baselines)
            )
        except UserError as exc:
            raise UserError(f"{exc} (copy the prior into the user folder to re-screen it)") from None
        print(f"recorded in {prior.path}")
    elif cfg.screen.record:
        print("not recorded: screen.max_steps shortens the episodes")
    return 0


def _screen_figures(result: ScreenResult, baselines: list[ScreenResult]) -> dict[str, str]:
    """Header keys for the prior's mean episode length and each baseline's return and length, recorded
    beside screened_return (extra '# key: value' lines; readers that do not know them skip them)."""
    figures = {"screened_length": f"{result.mean_length:.1f}"}
    for baseline in baselines:
        key = baseline.name.replace("-", "_")
        figures[f"{key}_return"] = f"{baseline.mean:.2f}"
        figures[f"{key}_return_std"] = f"{baseline.std:.2f}"
        figures[f"{key}_length"] = f"{baseline.mean_length:.1f}"
    return figures


def _generate(env_id: str | None, cfg: DictConfig) -> int:
    from robolearn.llm.client import ChatClient, resolve_settings
    from robolearn.llm.pipeline import GenerateOptions, candidate_table, generate_prior
    from robolearn.llm.priors import user_dir

    if not env_id:
        raise UserError("action=generate needs env=<EnvId>")
    settings = resolve_settings(
        base_url=cfg.llm.base_url,
        model=cfg.llm.model,
        api_key=cfg.llm.api_key,
        timeout_s=cfg.llm.timeout_s,
        retries=cfg.llm.retries,
        backoff_s=cfg.llm.backoff_s,
        temperature=cfg.llm.temperature,
        max_tokens=cfg.llm.max_tokens,
    )
    out_root = Path(cfg.out_dir).expanduser() if cfg.out_dir else user_dir(cfg.user_dir)
    options = GenerateOptions(
        n_candidates=cfg.n_candidates,
        samples=cfg.llm.samples,
        name=cfg.name,
        overwrite=cfg.overwrite,
        screen_episodes=cfg.screen.episodes,
        screen_seed=cfg.screen.seed,
        screen_max_steps=cfg.screen.max_steps,
        probe_observations=cfg.sandbox.probe_obs,
        probe_limits=_probe_limits(cfg),
        screen_limits=SandboxLimits(
            cpu_s=cfg.screen.cpu_s, memory_mb=cfg.screen.memory_mb, wall_s=cfg.screen.wall_s
        ),
        reject_out_of_bounds=cfg.sandbox.reject_out_of_bounds,
        model=settings.model,
        endpoint=settings.base_url,
    )
    print(
        f"asking {settings.model} at {settings.base_url} for {cfg.n_candidates} candidate(s) x {cfg.llm.samples} reply(ies)"
    )
    result = generate_prior(env_id, ChatClient(settings), out_root, options)
    print(candidate_table(result.candidates))
    if result.best is None or result.saved_path is None:
        report = f" (every reason: {result.report_path})" if result.report_path is not None else ""
        raise UserError(
            f"none of the {len(result.candidates)} candidates passed every check; nothing saved{report}"
        )
    print(f"saved {result.best.label} to {result.saved_path} (report: {result.report_path})")
    return 0


def _probe_limits(cfg: DictConfig) -> SandboxLimits:
    return SandboxLimits(
        cpu_s=cfg.sandbox.cpu_s,
        memory_mb=cfg.sandbox.memory_mb,
        wall_s=cfg.sandbox.wall_s,
        call_budget_ms=cfg.sandbox.call_budget_ms,
    )


def validate_prior_config(cfg: DictConfig) -> None:
    """Value checks that composition cannot do; UserError on the first problem."""
    if cfg.action not in ACTIONS:
        raise UserError(f"action={cfg.action} is not one of {', '.join(ACTIONS)}")
    resolve_env_id(cfg)
    if cfg.n_candidates < 1:
        raise UserError(f"n_candidates must be at least 1, got {cfg.n_candidates}")
    if cfg.llm.samples < 1:
        raise UserError(f"llm.samples must be at least 1, got {cfg.llm.samples}")
    if cfg.screen.episodes < 1:
        raise UserError(f"screen.episodes must be at least 1, got {cfg.screen.episodes}")
    for key in ("cpu_s", "memory_mb", "wall_s", "call_budget_ms"):
        if cfg.sandbox[key] <= 0:
            raise UserError(f"sandbox.{key} must be positive, got {cfg.sandbox[key]}")
    if cfg.action == "generate":
        # Before the first request; RestrictedPython stays optional (the checker's second opinion).
        require_extra("action=generate", "openai")


# Console entry point (robolearn-prior).
HELP = verb_help(
    "prior",
    "action=<generate|screen|list> env=<env> [key=value ...]",
    "CAMEL prior policies: ask an LLM to write candidate controllers for an env (generate), run a prior\n"
    "in seeded rollouts and record its return (screen), or list the shipped and user priors (list).\n"
    "See docs/camel_priors.md.",
    [
        ("action", "generate | screen | list (default: list)"),
        ("env", "an entry of configs/env (e.g. env=Hopper-v5), as for robolearn.train"),
        ("env_id", "a gymnasium id without a configs/env entry (instead of env=)"),
        ("prior", "action=screen: a prior name or the path of a .py prior file"),
        ("name", "action=generate: the saved prior's name (default <model>_<prompt hash>)"),
        ("overwrite", "action=generate: replace an existing prior of that name (default: false)"),
        ("n_candidates", "programs each LLM reply is asked for (default: 4)"),
        ("out_dir", "action=generate: priors root to save into (default: user_dir)"),
        ("user_dir", "user priors root (default $ROBOLEARN_PRIORS_DIR, else ~/.robolearn/priors)"),
        ("llm.*", "base_url, model, api_key (else $ROBOLEARN_LLM_*), timeout_s, retries, temperature, ..."),
        ("screen.*", "episodes, seed, max_steps, record, cpu_s, memory_mb, wall_s"),
        (
            "sandbox.*",
            "limits of the probe run on sampled observations (cpu_s, memory_mb, call_budget_ms, ...)",
        ),
    ],
    [
        "python -m robolearn.prior action=list env=Hopper-v5",
        "python -m robolearn.prior action=screen env=Hopper-v5 prior=hopper_balance_pd",
        "python -m robolearn.prior action=generate env=Hopper-v5 llm.base_url=http://localhost:8000/v1 llm.model=<m>",
    ],
)

main = hydra_verb("prior", run, validate_prior_config, setup=register_prior_schema, help_text=HELP)

if __name__ == "__main__":
    main()
