"""Dataclass schemas for every config group, so a typo or a wrong type fails at composition.

Agent hyperparameter names follow the stable-baselines3 constructor arguments; the RL Zoo's tuned
values (configs/agent_tuned/<algo>/<env>.yaml) are written against these schemas.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class PolicyKwargsConfig:
    """Network shape: `net_arch` layer sizes for actor and critic alike, or separate sizes with
    `net_arch_pi` (actor) and `net_arch_critic` (value function for PPO, Q-functions for SAC/TD3).
    None keeps SB3's default for that network."""

    net_arch: list[int] | None = None
    net_arch_pi: list[int] | None = None
    net_arch_critic: list[int] | None = None
    activation: str = "default"  # default (SB3's per-algorithm choice) | relu | tanh | elu | leaky_relu
    log_std_init: float | None = None
    ortho_init: bool | None = None
    squash_output: bool | None = None
    n_critics: int | None = None


@dataclass
class AgentConfig:
    """Fields shared by every agent."""

    algo: str = MISSING
    policy: str = "MlpPolicy"
    n_envs: int = 1
    normalize_obs: bool = False
    normalize_reward: bool = False
    learning_rate: float = 3e-4
    lr_schedule: str = "constant"  # constant | linear (decays to 0 at the end of training)
    gamma: float = 0.99
    use_sde: bool = False
    sde_sample_freq: int = -1
    policy_kwargs: PolicyKwargsConfig = field(default_factory=PolicyKwargsConfig)


@dataclass
class PPOConfig(AgentConfig):
    algo: str = "ppo"
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    clip_range_schedule: str = "constant"  # constant | linear
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    # rsl_rl's KL-adaptive learning rate (starting from learning_rate); null keeps lr_schedule.
    desired_kl: float | None = None


@dataclass
class RslPPOConfig(AgentConfig):
    """agent=rsl_ppo: rsl-rl-lib's PPO (robolearn/agents/rsl_ppo.py), named as rsl_rl names them.

    Defaults are rsl_rl's PPO constructor's (rsl_rl/algorithms/ppo.py), which are legged_gym's
    (legged_gym/envs/base/legged_robot_config.py, LeggedRobotCfgPPO); configs/agent/rsl_ppo.yaml
    cites each. The SB3-only fields inherited from AgentConfig (policy, normalize_*, use_sde, ...)
    must stay at their defaults; the empirical normaliser replaces normalize_obs.
    """

    algo: str = "rsl_ppo"
    n_envs: int = 64
    learning_rate: float = 1e-3
    num_steps_per_env: int = 24
    actor_hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    critic_hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    activation: str = "elu"
    init_noise_std: float = 1.0
    # Scales the actor's last layer at initialisation (1: rsl_rl's own init), so the initial mean action
    # is near zero, as SB3's policy head (gain 0.01); ASAP's delta model starts this way.
    actor_output_gain: float = 1.0
    noise_std_type: str = "scalar"  # scalar | log
    empirical_normalization: bool = True
    num_learning_epochs: int = 5
    num_mini_batches: int = 4
    clip_param: float = 0.2
    lam: float = 0.95
    value_loss_coef: float = 1.0
    use_clipped_value_loss: bool = True
    entropy_coef: float = 0.01
    max_grad_norm: float = 1.0
    schedule: str = "adaptive"  # adaptive (KL-driven learning rate) | fixed
    desired_kl: float | None = 0.01
    # Observation groups per network (rsl_rl's obs_groups): "policy" is a Box env's observation; a
    # Dict observation space offers its keys, e.g. critic: [policy, privileged].
    obs_groups: dict[str, list[str]] = field(
        default_factory=lambda: {"actor": ["policy"], "critic": ["policy"]}
    )
    # With env.kwargs.backend=warp: the velocity task's observations, rewards and resets run on the
    # device too (robolearn/envs/tasks/velocity_device.py), with no host round trip per step.
    env_on_device: bool = False
    # Start from another agent=rsl_ppo run's newest checkpoint (actor, critic, normaliser and
    # optimiser; the learning rate is this config's): fine-tuning, e.g. ASAP's finetune stage.
    init_from: str | None = None


@dataclass
class OffPolicyConfig(AgentConfig):
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    train_freq: int = 1
    gradient_steps: int = 1
    optimize_memory_usage: bool = False


@dataclass
class SACConfig(OffPolicyConfig):
    algo: str = "sac"
    ent_coef: str = "auto"  # "auto", "auto_<init>" or a fixed number as a string, as in SB3
    target_update_interval: int = 1
    target_entropy: str = "auto"


@dataclass
class TD3Config(OffPolicyConfig):
    algo: str = "td3"
    learning_rate: float = 1e-3
    action_noise: str = "normal"  # none | normal | ornstein_uhlenbeck
    action_noise_std: float = 0.1
    policy_delay: int = 2
    target_policy_noise: float = 0.2
    target_noise_clip: float = 0.5


@dataclass
class NullAgentConfig(AgentConfig):
    """agent=zero | agent=random: sanity agents that act without learning (robolearn/agents/null.py)."""

    algo: str = "zero"


@dataclass
class CamelConfig:
    """CAMEL action masking around a prior policy (robolearn/methods/camel.py)."""

    name: str = "camel"
    # best (the env's prior with the highest screened return), a prior by name
    # (policies/priors/<env>/<name>.py or the user prior folder), a path to a .py prior file, or
    # expert:<run dir> to centre the mask on a trained agent (expert masking).
    prior: str = "best"
    radius: float = 0.3  # box half-width, as a fraction of each action dimension's half-range
    eps_fraction: float = 0.5  # mask probability decays 1 -> 0 over this fraction of `steps`
    eps_mode: str = "episode"  # episode (one draw per episode) | step
    on_bad_prior: str = (
        "stop"  # stop (refuse to train) | unmasked (train plain TD3/SAC, noted in the summary)
    )
    probe: bool = True  # run the prior in the sandbox before training
    # Also evaluate the deterministic actor through the mask while eps > 0 (eval/masked/*): the agent
    # as it would act with its prior, next to the standalone actor's eval/mean_return.
    eval_mask: bool = False
    # What the update does with masked transitions still in replay once eps = 0 (before, all map):
    # mapped (their boxes keep shaping the actor loss and targets) | raw (the raw actor output on every
    # transition; the map is never called) | drop (the actor learns on unmasked transitions only; the
    # critic on all, with raw targets). Default mapped until the Hopper ablation in benchmarks/camel.py
    # decides (docs/camel.md).
    masked_replay: str = "mapped"


@dataclass
class PriorInitConfig:
    """Behaviour-clone a prior policy into PPO's actor before training (robolearn/methods/prior_init.py)."""

    name: str = "prior_init"
    prior: str = "best"  # as method=camel's: best, a prior name, a .py path, or expert:<run dir>
    samples: int = 100_000  # env steps of noisy prior rollouts to clone from (counted in the run's steps)
    noise: float = 0.06  # exploration noise std during those rollouts, fraction of the action half-range
    epochs: int = 8  # passes over the samples
    batch_size: int = 1024
    learning_rate: float = 1e-3  # Adam, for the cloning only
    # Kickstarting: after each PPO update, distil the prior on the rollout with a learning rate
    # falling from learning_rate to 0 over this many env steps after the warm start (0: off).
    kickstart_steps: int = 0
    on_bad_prior: str = "stop"  # stop (refuse to train) | unmasked (train from scratch, noted in the summary)
    probe: bool = True  # run the prior in the sandbox before training


@dataclass
class EnvConfig:
    """One environment: the gymnasium id and the keyword arguments passed to gymnasium.make."""

    id: str = MISSING
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None  # None keeps the registered time limit
    vec_env: str = "dummy"  # dummy (one process) | subproc (one process per env)


@dataclass
class EvalConfig:
    every: int = 5000  # env steps between evaluations; 0 evaluates only at the end
    episodes: int = 10
    deterministic: bool = True
    seed_offset: int = 1_000_000  # eval episode i resets with seed + seed_offset + i


@dataclass
class CheckpointConfig:
    every: int = 10_000  # env steps between checkpoints (always one at the end)
    save_replay_buffer: bool = True


@dataclass
class WandbConfig:
    enabled: bool = False
    mode: str = "offline"  # offline | online | disabled
    project: str = "robolearn"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class LoggerConfig:
    tensorboard: bool = True
    # SB3's log_interval: episodes for off-policy agents (default 4), rollouts for on-policy ones
    # (default 1). SB3 counts rollouts afresh in each learn() call, so with an on-policy agent and
    # log_interval > 1 a resumed run logs its training scalars at shifted steps (figures unchanged).
    log_interval: int | None = None
    progress: str = "auto"  # auto (rich bar on a terminal, log lines otherwise) | bar | lines | none
    progress_every_s: float = 30.0
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class TrainConfig:
    env: EnvConfig = MISSING
    agent: AgentConfig = MISSING
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    steps: int = 10_000
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | auto
    torch_threads: int = 1
    resume: str | None = None
    method: Any = None  # None (plain agent) or a method node, e.g. method=camel


@dataclass
class EvaluateConfig:
    """`python -m robolearn.evaluate run=<run dir> ...` or `policy=<artifact folder> ...` (sim2sim)."""

    run: str | None = None  # a run directory (exactly one of run and policy)
    policy: str | None = (
        None  # a policy artifact: sim2sim through the deploy runtime (robolearn.deploy.sim2sim)
    )
    checkpoint: str = "final"  # final | best | latest (newest resumable checkpoint)
    episodes: int | None = None  # None: 10 for run=, 3 for policy=
    seed: int | None = (
        None  # None: the run's own eval seeds (seed + eval.seed_offset), as in training; 0 for policy=
    )
    deterministic: bool = True
    video: bool = False
    video_episodes: int = 1
    # policy= (sim2sim) only
    command: list[float] = field(default_factory=lambda: [0.5, 0.0, 0.0])  # vx, vy (m/s), yaw rate (rad/s)
    duration: float = 20.0  # policy time per episode (s)
    settle: float = 2.0  # tracking errors are measured after this much policy time (s)
    pushes: float = 0.0  # largest planar push velocity (m/s); 0 = none
    push_interval: list[float] = field(default_factory=lambda: [15.0, 15.0])  # [min, max] s between pushes
    out: str | None = None  # result JSON; None: <artifact>/sim2sim/<name>.json
    name: str | None = None  # result file name; None: a UTC timestamp


def register_schemas() -> None:
    """Register schemas with Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(group="env", name="env_schema", node=EnvConfig)
    cs.store(group="agent", name="ppo_schema", node=PPOConfig)
    cs.store(group="agent", name="sac_schema", node=SACConfig)
    cs.store(group="agent", name="td3_schema", node=TD3Config)
    cs.store(group="agent", name="rsl_ppo_schema", node=RslPPOConfig)
    cs.store(group="agent", name="null_schema", node=NullAgentConfig)
    cs.store(group="logger", name="logger_schema", node=LoggerConfig)
    cs.store(group="method", name="camel_schema", node=CamelConfig)
    cs.store(group="method", name="prior_init_schema", node=PriorInitConfig)
