"""Checks that run before any work: compose every requested config, then check values.

Hydra and OmegaConf catch unknown keys and wrong types, but report them over several lines with a
traceback hint; here each problem becomes one line naming the key, the bad value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from robolearn.errors import UserError, close_matches
from robolearn.resources import configs_dir

Check = Callable[[Any], bool]

_CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("cpu", "cuda", "auto"),
    "env.vec_env": ("dummy", "subproc"),
    "agent.lr_schedule": ("constant", "linear"),
    "agent.clip_range_schedule": ("constant", "linear"),
    "agent.action_noise": ("none", "normal", "ornstein_uhlenbeck"),
    "agent.policy_kwargs.activation": ("default", "relu", "tanh", "elu", "leaky_relu"),
    "logger.progress": ("auto", "bar", "lines", "none"),
    "logger.wandb.mode": ("offline", "online", "disabled"),
    "method.name": ("camel", "prior_init"),
    "method.eps_mode": ("episode", "step"),
    "method.masked_replay": ("mapped", "raw", "drop"),  # robolearn/methods/camel.py MASKED_REPLAY_MODES
    "method.on_bad_prior": ("stop", "unmasked"),
    # agent=rsl_ppo (rsl_rl's names; robolearn/agents/rsl_ppo.py)
    "agent.schedule": ("adaptive", "fixed"),
    "agent.noise_std_type": ("scalar", "log"),
    # rsl_rl/utils/utils.py:resolve_nn_activation's names.
    "agent.activation": (
        "elu",
        "selu",
        "relu",
        "crelu",
        "lrelu",
        "tanh",
        "sigmoid",
        "softplus",
        "gelu",
        "swish",
        "mish",
    ),
}

# key -> (check, what is allowed)
_RANGES: dict[str, tuple[Check, str]] = {
    "steps": (lambda v: v > 0, "a positive number of env steps"),
    "seed": (lambda v: v >= 0, "an integer >= 0"),
    "torch_threads": (lambda v: v >= 1, "an integer >= 1"),
    "eval.every": (lambda v: v >= 0, "env steps >= 0 (0: only at the end)"),
    "eval.episodes": (lambda v: v >= 1, "an integer >= 1"),
    "checkpoint.every": (lambda v: v > 0, "a positive number of env steps"),
    "env.max_episode_steps": (
        lambda v: v >= 1,
        "a positive number of steps, or null for the registered limit",
    ),
    "logger.log_interval": (lambda v: v >= 1, "an integer >= 1 (or null for the agent's default)"),
    "agent.n_envs": (lambda v: v >= 1, "an integer >= 1"),
    "agent.learning_rate": (lambda v: v > 0, "a positive number"),
    "agent.gamma": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "agent.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "agent.n_steps": (lambda v: v >= 1, "an integer >= 1"),
    "agent.n_epochs": (lambda v: v >= 1, "an integer >= 1"),
    "agent.gae_lambda": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "agent.clip_range": (lambda v: v > 0, "a positive number"),
    "agent.desired_kl": (lambda v: v > 0, "a positive KL (e.g. 0.01), or null for a scheduled learning rate"),
    "agent.ent_coef": (lambda v: not isinstance(v, int | float) or v >= 0, "a number >= 0"),
    "agent.buffer_size": (lambda v: v >= 1, "an integer >= 1"),
    "agent.learning_starts": (lambda v: v >= 0, "an integer >= 0"),
    "agent.tau": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "agent.train_freq": (lambda v: v >= 1, "an integer >= 1"),
    "agent.gradient_steps": (lambda v: v >= 1 or v == -1, "an integer >= 1, or -1"),
    "agent.policy_delay": (lambda v: v >= 1, "an integer >= 1"),
    "agent.action_noise_std": (lambda v: v >= 0, "a number >= 0"),
    "agent.num_steps_per_env": (lambda v: v >= 1, "an integer >= 1 (rsl_rl's default: 24)"),
    "agent.num_learning_epochs": (lambda v: v >= 1, "an integer >= 1 (rsl_rl's default: 5)"),
    "agent.num_mini_batches": (lambda v: v >= 1, "an integer >= 1 (rsl_rl's default: 4)"),
    "agent.clip_param": (lambda v: v > 0, "a positive number (rsl_rl's default: 0.2)"),
    "agent.lam": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "agent.value_loss_coef": (lambda v: v >= 0, "a number >= 0"),
    "agent.entropy_coef": (lambda v: v >= 0, "a number >= 0"),
    "agent.max_grad_norm": (lambda v: v > 0, "a positive number"),
    "agent.init_noise_std": (lambda v: v > 0, "a positive standard deviation (rsl_rl's default: 1.0)"),
    "agent.actor_output_gain": (
        lambda v: 0 < v <= 1,
        "a factor in (0, 1] on the actor's last layer, e.g. 0.01",
    ),
    "agent.actor_hidden_dims": (
        lambda v: len(v) >= 1 and all(n >= 1 for n in v),
        "a list of layer sizes >= 1",
    ),
    "agent.critic_hidden_dims": (
        lambda v: len(v) >= 1 and all(n >= 1 for n in v),
        "a list of layer sizes >= 1",
    ),
    "method.radius": (lambda v: v > 0, "a positive fraction of the action half-range (e.g. 0.3)"),
    "method.eps_fraction": (lambda v: 0 <= v <= 1, "a fraction of training in [0, 1]"),
    "method.samples": (lambda v: v >= 1, "a positive number of env steps"),
    "method.noise": (lambda v: v >= 0, "a fraction of the action half-range >= 0 (e.g. 0.06)"),
    "method.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "method.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "method.learning_rate": (lambda v: v > 0, "a positive number"),
    "method.kickstart_steps": (lambda v: v >= 0, "env steps >= 0 (0: no kickstarting)"),
}


def _get(cfg: DictConfig, dotted: str) -> tuple[bool, Any]:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_train_config(cfg: DictConfig) -> None:
    """Raise UserError for the first value outside its allowed set or range."""
    for key, choices in _CHOICES.items():
        present, value = _get(cfg, key)
        if present and value not in choices:
            raise UserError(
                f"{key}={value} is not allowed{close_matches(str(value), choices)}; choose one of {', '.join(choices)}"
            )
    for key, (ok, allowed) in _RANGES.items():
        present, value = _get(cfg, key)
        if present and value is not None and not ok(value):
            raise UserError(f"{key}={value} is out of range; use {allowed}")
    if OmegaConf.select(cfg, "env.kwargs.backend", default=None) == "isaaclab":
        from robolearn.isaac.options import check_isaaclab_env

        check_isaaclab_env(cfg)  # a task server's id is not in this interpreter's gymnasium registry
    else:
        _check_env_id(cfg.env.id)
    method = cfg.get("method")
    if method is not None and method.name == "camel" and cfg.agent.algo not in ("td3", "sac"):
        raise UserError(f"method=camel needs agent=td3 or agent=sac, not agent={cfg.agent.algo}")
    if method is not None and method.name == "prior_init" and cfg.agent.algo != "ppo":
        raise UserError(f"method=prior_init needs agent=ppo, not agent={cfg.agent.algo}")
    if cfg.agent.algo == "rsl_ppo":
        _check_rsl_ppo(cfg)
    elif OmegaConf.select(cfg, "env.kwargs.critic_observes_base_lin_vel", default=False):
        raise UserError(
            f"env.kwargs.critic_observes_base_lin_vel=true feeds rsl_rl's critic group, which "
            f"agent={cfg.agent.algo} does not read; use agent=rsl_ppo or set it to false"
        )


# SB3-only agent fields that agent=rsl_ppo inherits from AgentConfig but does not use, and the way to
# get the same effect with rsl_rl.
_RSL_UNUSED = {
    "normalize_obs": (False, "rsl_ppo normalises observations itself: agent.empirical_normalization=true"),
    "normalize_reward": (False, "rsl_ppo does not normalise rewards; leave it false"),
    "use_sde": (False, "rsl_ppo samples from a Gaussian with a learnt std; leave it false"),
}


def _check_rsl_ppo(cfg: DictConfig) -> None:
    agent = cfg.agent
    if agent.get("lr_schedule", "constant") == "linear" and agent.get("schedule") != "fixed":
        raise UserError(
            f"agent.lr_schedule=linear needs agent.schedule=fixed for agent=rsl_ppo (schedule={agent.get('schedule')}"
            " sets the rate itself)"
        )
    for key, (default, fix) in _RSL_UNUSED.items():
        if key in agent and agent[key] != default:
            raise UserError(f"agent.{key}={agent[key]} is not used by agent=rsl_ppo; {fix}")
    if method := cfg.get("method"):
        raise UserError(
            f"method={method.name} does not work with agent=rsl_ppo; drop method= or use agent=ppo"
        )
    backend = OmegaConf.select(cfg, "env.kwargs.backend", default=None)
    if OmegaConf.select(cfg, "env.kwargs.critic_observes_base_lin_vel", default=False) and backend not in (
        "batch",
        "warp",
    ):
        raise UserError(
            f"env.kwargs.critic_observes_base_lin_vel=true needs a batched task to carry it; "
            f"env.kwargs.backend={backend} has none: set env.kwargs.backend=batch"
        )
    samples = int(agent.n_envs) * int(agent.num_steps_per_env)
    if agent.num_mini_batches > samples:
        raise UserError(
            f"agent.num_mini_batches={agent.num_mini_batches} exceeds the {samples} samples of a rollout "
            f"(n_envs x num_steps_per_env); use at most {samples}"
        )
    if agent.get("env_on_device") and OmegaConf.select(cfg, "env.kwargs.backend", default=None) != "warp":
        raise UserError(
            "agent.env_on_device=true runs the task on the GPU backend; add env.kwargs.backend=warp "
            '(pip install "robolearn[gpu]") or set agent.env_on_device=false'
        )
    if agent.schedule == "adaptive" and agent.desired_kl is None:
        raise UserError(
            "agent.schedule=adaptive needs agent.desired_kl (e.g. 0.01); or set agent.schedule=fixed"
        )


def _check_env_id(env_id: str) -> None:
    import gymnasium as gym

    from robolearn.envs import register_envs

    register_envs()
    if env_id not in gym.registry:
        raise UserError(
            f"env.id={env_id} is not a registered gymnasium id{close_matches(env_id, gym.registry.keys())}"
        )


def group_options(group: str) -> list[str]:
    """Config files available in a config group (folder), without the .yaml suffix."""
    folder = configs_dir() / group
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def _sweep_variants(overrides: list[str]) -> Iterator[list[str]]:
    """Concrete override lists covering every value of every sweep (one value varied at a time)."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as exc:
        raise UserError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None
    base: list[str] = []
    sweeps: list[tuple[int, list[str]]] = []
    for idx, ov in enumerate(parsed):
        if ov.is_sweep_override():
            values = [str(v) for v in ov.sweep_string_iterator()]
            prefix = ov.get_key_element()
            variants = [f"{prefix}={v}" for v in values]
            sweeps.append((idx, variants))
            base.append(variants[0])
        else:
            base.append(overrides[idx])
    yield base
    for idx, variants in sweeps:
        for variant in itertools.islice(variants, 1, None):
            yield [*base[:idx], variant, *base[idx + 1 :]]


def _explain(exc: Exception, overrides: list[str]) -> str:
    not_default = re.search(r"Could not override '([^']+)'\. No match in the defaults list", str(exc))
    if not_default is not None:
        # e.g. experiment=hopper_sac: the group is not in the defaults list, so it must be added.
        key = not_default.group(1)
        given = [o for o in overrides if o.split("=", 1)[0] == key]
        item = given[-1] if given else f"{key}=..."
        return f"{item} names a config group the defaults do not choose; add it with +{item}"
    if isinstance(exc, MissingConfigException):
        found = re.search(r"Could not find '([^']+)'", str(exc))
        if found is not None:
            group, _, value = found.group(1).rpartition("/")
            shown = [o for o in (exc.options or []) if not o.endswith("_schema")]
            if group and shown:
                return (
                    f"{group}={value} is not a known {group.rsplit('/', 1)[-1]}{close_matches(value, shown)}; "
                    f"choose one of {', '.join(shown)}"
                )
        return str(exc).splitlines()[0]
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ConfigKeyError | ConfigAttributeError):
        full_key = getattr(cause, "full_key", None) or "?"
        key = full_key.rsplit(".", 1)[-1]
        obj_type = getattr(cause, "object_type", None)
        allowed = [f.name for f in dataclasses.fields(obj_type)] if dataclasses.is_dataclass(obj_type) else []
        hint = close_matches(key, allowed)
        if hint or not allowed:
            return f"unknown config key {full_key}{hint or '; prefix it with + to add a new key'}"
        return f"unknown config key {full_key}; keys here: {', '.join(allowed)}"
    if isinstance(cause, ValidationError):
        full_key = getattr(cause, "full_key", None) or "?"
        msg = str(getattr(cause, "msg", cause)).splitlines()[0]
        return f"{full_key}: {msg}"
    if isinstance(cause, OmegaConfBaseException):
        return str(getattr(cause, "msg", cause)).splitlines()[0]
    return str(exc).splitlines()[0]


def compose_config(config_name: str, overrides: list[str], config_dir: Path | None = None) -> DictConfig:
    """Compose a config from the project's config folder (or `config_dir`, a verb's own root such as
    configs/imitation), turning composition errors into UserError."""
    from robolearn.config.schema import register_schemas

    register_schemas()
    # Overrides of Hydra's own config (launcher, sweep dir...) are checked too; the hydra node is
    # then dropped, since only a running Hydra can resolve it.
    with_hydra = any(o.lstrip("+~").startswith("hydra") for o in overrides)
    with initialize_config_dir(config_dir=str(config_dir or Path(configs_dir())), version_base="1.3"):
        try:
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=with_hydra)
            if with_hydra:
                with open_dict(cfg):
                    del cfg["hydra"]
            return cfg
        except (
            ConfigCompositionException,
            MissingConfigException,
            OmegaConfBaseException,
            ValueError,
        ) as exc:
            raise UserError(_explain(exc, overrides)) from None


def _refuse_sweep_without_multirun(overrides: list[str]) -> None:
    """Hydra answers `agent=sac,td3` without -m with a six-line message; say the fix in one."""
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as exc:
        raise UserError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from None
    for item, ov in zip(overrides, parsed, strict=True):
        if ov.is_sweep_override():
            raise UserError(
                f"{item} gives several values, which is a sweep: add -m to run one job per value, "
                "or give one value"
            )


def precheck_overrides(
    config_name: str, argv: list[str], validate: Callable[[DictConfig], None], config_dir: Path | None = None
) -> None:
    """Compose and validate every config a command line asks for, before Hydra starts any job."""
    overrides = [a for a in argv if "=" in a and not a.startswith("-")]
    if not any(a in ("-m", "--multirun") for a in argv):
        _refuse_sweep_without_multirun(overrides)
    for variant in _sweep_variants(overrides):
        validate(compose_config(config_name, variant, config_dir))


def hydra_value(value: Any) -> str:
    """A value in Hydra's override grammar ([{kind:motor_kp,joint:'*',scale:0.65}])."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if value is None:
        return "null"
    return json.dumps(value)
