"""D4RL-style offline datasets from our own behaviour runs (Fu et al. 2020, "D4RL", sec. 5 and app. C).

D4RL's recipe, made exact for robolearn (docs/datasets.md lists what differs from D4RL):

- the behaviour run is an ordinary `robolearn.train` SAC (or TD3) run, trained in segments of
  `snapshot_every` steps; after each segment its final policy and that policy's evaluation return
  (the run's own deterministic eval) are kept as `snapshots/step_<N>/`, since the run itself keeps
  only its newest checkpoints;
- expert: the snapshot at the end of the budget; medium: the earlier snapshot whose evaluation return
  is closest to `medium_fraction` (1/3) of the expert's; random: the run's own randomly initialised
  policy (built from its config and seed, before any update);
- medium-replay: the behaviour run's replay buffer, every transition up to the medium snapshot's
  step, split into episodes; medium-expert: the medium and expert datasets concatenated;
- random, medium and expert data are sampled from the stochastic policy (SAC's Gaussian; TD3 adds
  Gaussian exploration noise), as D4RL collected with its SAC policies;
- reference returns (D4RL's REF_MIN/MAX_SCORE): a uniform-random-action policy and the expert
  (stochastic, as it collected), each over `ref_episodes` episodes with fixed reset seeds.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robolearn.config.schema import EnvConfig
from robolearn.datasets import Episode, dataset_dir, write_dataset
from robolearn.errors import UserError
from robolearn.utils.io import atomic_write_json, replace_dir

KINDS = ("random", "medium", "medium-replay", "expert", "medium-expert")
# Each kind's own stream of reset seeds, so two kinds never replay the same start states.
_KIND_CODE = {"random": 1, "medium": 2, "expert": 3, "reference-random": 4, "reference-expert": 5}
SNAPSHOTS = "snapshots"
REFERENCES_FILE = "references.json"


@dataclass(frozen=True)
class Snapshot:
    """A behaviour policy kept at `step`, with the run's evaluation return at that step."""

    path: Path
    step: int
    mean_return: float
    std_return: float
    episodes: int

    @property
    def model(self) -> Path:
        """The SB3 model file."""
        return self.path / "model.zip"


@dataclass(frozen=True)
class BehaviorSpec:
    """Which behaviour run to train or reuse, and how."""

    env: str
    agent: str
    seed: int
    steps: int
    snapshot_every: int
    run_dir: Path
    train_overrides: tuple[str, ...] = ()
    progress: str = "lines"

    def train_overrides_for(self, steps: int) -> list[str]:
        """The `robolearn.train` overrides of the segment that ends at `steps`."""
        return [
            f"env={self.env}",
            f"agent={self.agent}",
            f"seed={self.seed}",
            f"steps={steps}",
            # Evaluation only at each segment's end: that is the snapshot's return.
            "eval.every=0",
            f"checkpoint.every={self.snapshot_every}",
            *self.train_overrides,
        ]


# ----- the behaviour run ---------------------------------------------------------------------------
def list_snapshots(run_dir: Path) -> list[Snapshot]:
    """The snapshots a behaviour run holds, by step."""
    out = []
    for folder in sorted((Path(run_dir) / SNAPSHOTS).glob("step_*")):
        info_file = folder / "eval.json"
        if not info_file.is_file() or not (folder / "model.zip").is_file():
            continue
        info = json.loads(info_file.read_text(encoding="utf-8"))
        out.append(
            Snapshot(
                folder,
                int(info["step"]),
                float(info["mean_return"]),
                float(info["std_return"]),
                int(info["episodes"]),
            )
        )
    return sorted(out, key=lambda s: s.step)


def _snapshot(run_dir: Path, step: int) -> Snapshot:
    """Copy the run's final/ policy and its final evaluation into snapshots/step_<step>/ (atomically)."""
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    if int(summary["steps"]) != step:
        raise UserError(
            f"{run_dir} ran {summary['steps']} steps, not the {step} a snapshot needs; "
            "delete its snapshots/ and checkpoints/ to train it again"
        )
    folder = run_dir / SNAPSHOTS / f"step_{step:012d}"
    tmp = run_dir / SNAPSHOTS / f".tmp-step_{step:012d}"
    tmp.mkdir(parents=True, exist_ok=True)
    for name in ("model.zip", "vecnormalize.pkl"):
        src = run_dir / "final" / name
        if src.is_file():
            (tmp / name).write_bytes(src.read_bytes())
    info = {
        "step": step,
        "mean_return": summary["eval/mean_return"],
        "std_return": summary["eval/std_return"],
        "episodes": summary["eval/episodes"],
        "returns": summary.get("eval/returns"),
    }
    atomic_write_json(tmp / "eval.json", info)
    replace_dir(tmp, folder)
    return Snapshot(
        folder, step, float(info["mean_return"]), float(info["std_return"]), int(info["episodes"])
    )


def ensure_behavior_run(spec: BehaviorSpec) -> list[Snapshot]:
    """Train the behaviour run to its budget in segments (resuming an interrupted one, reusing a
    finished one as it is) and return its snapshots."""
    from robolearn.cli import command_line
    from robolearn.config.validate import compose_config
    from robolearn.train import train_job

    have = {s.step for s in list_snapshots(spec.run_dir)}
    targets = list(range(spec.snapshot_every, spec.steps + 1, spec.snapshot_every))
    if not targets or targets[-1] != spec.steps:
        targets.append(spec.steps)
    todo = [t for t in targets if t not in have]
    if todo:
        print(
            f"behaviour run {spec.run_dir}: training {spec.agent} on {spec.env} to {spec.steps} steps "
            f"({len(todo)} of {len(targets)} segments left)",
            flush=True,
        )
    for target in todo:
        overrides = spec.train_overrides_for(target)
        cfg = compose_config("train", [*overrides, f"logger.progress={spec.progress}"])
        try:
            train_job(cfg, spec.run_dir, command_line("train", [*overrides, f"hydra.run.dir={spec.run_dir}"]))
        except SystemExit as stop:
            if isinstance(stop.code, int) and stop.code >= 128:
                print(
                    "collect: the same collect command resumes the behaviour run", file=sys.stderr, flush=True
                )
            raise
        snap = _snapshot(spec.run_dir, target)
        print(f"snapshot at step {target}: eval return {snap.mean_return:.1f}", flush=True)
    return [s for s in list_snapshots(spec.run_dir) if s.step in set(targets)]


def choose_policies(
    snaps: Sequence[Snapshot], medium_fraction: float, random_return: float, min_step: int = 0
) -> tuple[Snapshot, Snapshot]:
    """(medium, expert): the last snapshot is the expert; medium is the earlier one, taken after
    `min_step` (the run's learning_starts: before it the policy is still the random initial one),
    whose evaluation return is closest to medium_fraction of the way from the random policy's return
    to the expert's (D4RL: "approximately 1/3 the performance of the expert"; measured from random so
    that envs with negative returns, e.g. Pendulum, get the same meaning)."""
    candidates = [s for s in snaps[:-1] if s.step > min_step]
    if not snaps or not candidates:
        raise UserError(
            f"a medium policy needs a snapshot after learning starts (step {min_step}) and before the last; "
            f"the behaviour run has {len(snaps)} snapshots: use a smaller behavior.snapshot_every"
        )
    expert = snaps[-1]
    target = random_return + medium_fraction * (expert.mean_return - random_return)
    medium = min(candidates, key=lambda s: (abs(s.mean_return - target), s.step))
    return medium, expert


# ----- policies ------------------------------------------------------------------------------------
class BehaviorPolicy:
    """A stochastic behaviour policy over raw env observations: SAC samples its Gaussian, TD3 adds
    clipped Gaussian noise of `noise` x the action half-range (SB3's TD3 predict is deterministic)."""

    def __init__(self, model: Any, algo: str, noise: float, obs_norm: Any = None) -> None:
        self.model, self.algo, self.noise, self.obs_norm = model, algo, noise, obs_norm

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action for one observation."""
        x = self.obs_norm.normalize_obs(obs) if self.obs_norm is not None else obs
        action, _ = self.model.predict(x, deterministic=self.algo != "sac")
        space = self.model.action_space
        if self.algo != "sac" and self.noise > 0:
            half = (space.high - space.low) / 2.0
            action = np.clip(
                action + rng.normal(0.0, self.noise, size=action.shape) * half, space.low, space.high
            )
        return np.asarray(action, dtype=np.float32)


def load_policy(snap: Snapshot, algo: str, noise: float) -> BehaviorPolicy:
    """The snapshot's policy on the CPU (with its observation normalisation when the run had one)."""
    from robolearn.agents import algorithm_class

    model = algorithm_class(algo).load(snap.model, device="cpu")
    norm = None
    if (snap.path / "vecnormalize.pkl").is_file():
        import pickle

        with open(snap.path / "vecnormalize.pkl", "rb") as fh:
            norm = pickle.load(fh)
        norm.training = False
    return BehaviorPolicy(model, algo, noise, norm)


def initial_policy(run_dir: Path, noise: float) -> BehaviorPolicy:
    """The behaviour run's randomly initialised policy: built as the run built it (its config and
    seed), before any update (D4RL's "random": a randomly initialised policy)."""
    from omegaconf import OmegaConf

    from robolearn.agents import build_agent
    from robolearn.envs import make_vec_env
    from robolearn.utils.seeding import seed_everything

    cfg = OmegaConf.load(Path(run_dir) / "config.yaml")
    seed_everything(int(cfg.seed))
    venv = make_vec_env(cfg.env, n_envs=int(cfg.agent.n_envs), seed=int(cfg.seed))
    try:
        model = build_agent(cfg.agent, venv, seed=int(cfg.seed), device="cpu")
    finally:
        venv.close()
    return BehaviorPolicy(model, str(cfg.agent.algo), noise)


# ----- rollouts ------------------------------------------------------------------------------------
def kind_seed(seed: int, kind: str) -> int:
    """The first reset seed of a kind's episodes (episode i resets with it + i)."""
    return int(np.random.SeedSequence([seed, _KIND_CODE[kind]]).generate_state(1)[0] % 2**31)


def _float32_space(space: spaces.Space) -> spaces.Space:
    """D4RL stores float32; gymnasium's MuJoCo envs observe float64 (same bounds, dtype float32)."""
    if isinstance(space, spaces.Box) and space.dtype != np.float32:
        return spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), space.shape, np.float32
        )
    return space


def rollout_episodes(
    env: gym.Env, policy: BehaviorPolicy | None, size: int, first_seed: int, policy_seed: int
) -> Iterator[Episode]:
    """Episodes of `policy` (None: uniform random actions) totalling exactly `size` steps; episode i
    resets with first_seed + i, and the last one is cut (truncated) where the size is reached."""
    import torch

    torch.manual_seed(policy_seed)  # SAC samples its Gaussian with torch's global generator
    rng = np.random.default_rng(policy_seed)
    env.action_space.seed(policy_seed)
    left, i = size, 0
    while left > 0:
        obs, _ = env.reset(seed=first_seed + i)
        observations, actions, rewards, terms, truncs = [np.asarray(obs, np.float32)], [], [], [], []
        done = False
        while not done and left > 0:
            action = env.action_space.sample() if policy is None else policy.act(obs, rng)
            obs, reward, terminated, truncated, _ = env.step(action)
            left -= 1
            observations.append(np.asarray(obs, np.float32))
            actions.append(np.asarray(action, np.float32))
            rewards.append(float(reward))
            done = bool(terminated or truncated)
            terms.append(bool(terminated))
            # The dataset's end cuts its last episode: a time-limit-like ending, not a terminal state.
            truncs.append(bool(truncated) or (left == 0 and not terminated))
        yield Episode(
            observations=np.stack(observations),
            actions=np.stack(actions),
            rewards=np.asarray(rewards, np.float64),
            terminations=np.asarray(terms, bool),
            truncations=np.asarray(truncs, bool),
            seed=first_seed + i,
        )
        i += 1


def episode_returns(
    env: gym.Env, policy: BehaviorPolicy | None, episodes: int, first_seed: int, policy_seed: int
) -> list[float]:
    """Undiscounted returns of whole episodes (reset seeds first_seed + i)."""
    import torch

    torch.manual_seed(policy_seed)
    rng = np.random.default_rng(policy_seed)
    env.action_space.seed(policy_seed)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=first_seed + i)
        total, done = 0.0, False
        while not done:
            action = env.action_space.sample() if policy is None else policy.act(obs, rng)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = bool(terminated or truncated)
        out.append(total)
    return out


def replay_episodes(replay_file: Path, steps: int, action_space: spaces.Box) -> list[Episode]:
    """The first `steps` transitions of a behaviour run's replay buffer (checkpoint replay_buffer.npz,
    one env) as episodes, actions back in the env's units; the last episode is truncated at the cut."""
    with np.load(replay_file) as data:
        pos, full, size = (int(v) for v in data["__meta__"])
        if full:
            raise UserError(
                f"{replay_file}: the replay buffer wrapped around (agent.buffer_size={size}), so its first "
                "transitions are gone; train the behaviour run with a buffer_size of at least its steps"
            )
        if steps > pos:
            raise UserError(f"{replay_file} holds {pos} transitions, fewer than the {steps} asked for")
        if data["observations"].ndim < 2 or data["observations"].shape[1] != 1:
            raise UserError(
                f"{replay_file} comes from a run with several envs; medium-replay needs agent.n_envs=1"
            )
        obs = data["observations"][:steps, 0].astype(np.float32)
        nxt = data["next_observations"][:steps, 0].astype(np.float32)
        scaled = data["actions"][:steps, 0].astype(np.float64)
        rewards = data["rewards"][:steps, 0].astype(np.float64)
        dones = data["dones"][:steps, 0].astype(bool)
        timeouts = (
            data["timeouts"][:steps, 0].astype(bool) if "timeouts" in data.files else np.zeros(steps, bool)
        )
    # SB3's off-policy agents store actions rescaled to [-1, 1] (OffPolicyAlgorithm._sample_action).
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    actions = (low + 0.5 * (scaled + 1.0) * (high - low)).astype(np.float32)
    ends = [int(i) for i in np.flatnonzero(dones)]
    if not ends or ends[-1] != steps - 1:
        ends.append(steps - 1)
    episodes, start = [], 0
    for end in ends:
        sl = slice(start, end + 1)
        terms = dones[sl] & ~timeouts[sl]
        truncs = (dones[sl] & timeouts[sl]).copy()
        if not dones[end]:
            truncs[-1] = True  # cut where the medium policy takes over
        episodes.append(
            Episode(
                observations=np.concatenate([obs[sl], nxt[end : end + 1]]),
                actions=actions[sl],
                rewards=rewards[sl],
                terminations=terms,
                truncations=truncs,
            )
        )
        start = end + 1
    return episodes


# ----- references ----------------------------------------------------------------------------------
def reference_returns(
    run_dir: Path, env: gym.Env, expert: Snapshot, policy: BehaviorPolicy, episodes: int, seed: int
) -> dict[str, Any]:
    """D4RL-style reference returns (uniform random actions; the expert as it collects), measured once
    per behaviour run and expert and kept in <run>/references.json."""
    cache = Path(run_dir) / REFERENCES_FILE
    key = {"expert_step": expert.step, "episodes": episodes, "seed": seed}
    if cache.is_file():
        saved = json.loads(cache.read_text(encoding="utf-8"))
        if all(saved.get(k) == v for k, v in key.items()):
            return dict(saved)
    rand_seed, exp_seed = kind_seed(seed, "reference-random"), kind_seed(seed, "reference-expert")
    t0 = time.perf_counter()
    rand = episode_returns(env, None, episodes, rand_seed, rand_seed)
    exp = episode_returns(env, policy, episodes, exp_seed, exp_seed)
    refs = {
        **key,
        "ref_min_score": float(np.mean(rand)),
        "ref_max_score": float(np.mean(exp)),
        "random_returns": rand,
        "expert_returns": exp,
        "random_first_reset_seed": rand_seed,
        "expert_first_reset_seed": exp_seed,
        "random_policy": "uniform random actions (env.action_space.sample)",
        "expert_policy": f"{expert.path} (stochastic, as it collects)",
        "seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_json(cache, refs)
    return refs


def _collected_part(dataset_id: str, facts: dict[str, Any], spec: BehaviorSpec) -> list[Episode] | None:
    """The episodes of an already written dataset that holds exactly this part (same behaviour run,
    policy, size and seeds: what collecting it again would give), else None. medium-expert reuses the
    medium and expert datasets this way instead of rolling both policies out a second time."""
    from robolearn.datasets import load_dataset

    if not (dataset_dir(dataset_id) / "metadata.json").is_file():
        return None
    try:
        ds = load_dataset(dataset_id)
    except UserError:
        return None
    prov = ds.provenance
    same_run = (prov.get("behavior") or {}).get("run_dir") == str(spec.run_dir.resolve())
    theirs = prov.get("parts") or []
    if not same_run or len(theirs) != 1 or {k: theirs[0].get(k) for k in facts} != facts:
        return None
    return ds.episodes


# ----- the command ---------------------------------------------------------------------------------
def default_dataset_id(env_id: str, kind: str, seed: int) -> str:
    """robolearn/<env name>/<kind>-v0 (Hopper-v5 -> robolearn/hopper/medium-v0); seed != 0 is named."""
    name = env_id.rsplit("-v", 1)[0].lower().replace("/", "-")
    suffix = f"-seed{seed}" if seed != 0 else ""
    return f"robolearn/{name}/{kind}{suffix}-v0"


_ID = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*-v\d+$")


def dataset_id_for(cfg: Any) -> str:
    """The minari id: `out` when it is one (the dataset then lives under datasets_root()), else
    robolearn/<env>/<kind>-v0."""
    out = cfg.out
    if (
        out
        and _ID.match(str(out))
        and not str(out).startswith((".", "/", "~"))
        and not Path(str(out)).exists()
    ):
        return str(out)
    return default_dataset_id(str(cfg.env.id), str(cfg.kind), int(cfg.seed))


def behavior_spec(cfg: Any) -> BehaviorSpec:
    """The behaviour run a collect config names (defaults: budgets table, outputs/behavior/...)."""
    b = cfg.behavior
    budget = cfg.budgets.get(cfg.env.id) or {}
    steps = b.steps if b.steps is not None else budget.get("steps")
    every = b.snapshot_every if b.snapshot_every is not None else budget.get("snapshot_every")
    if steps is None or every is None:
        raise UserError(
            f"no behaviour budget for env={cfg.env.id} in configs/collect.yaml; "
            "give behavior.steps=<n> and behavior.snapshot_every=<n>"
        )
    run_dir = Path(cfg.behavior.dir or f"outputs/behavior/{cfg.env.id}/{b.agent}_seed{cfg.seed}")
    return BehaviorSpec(
        env=str(cfg.env.id),
        agent=str(b.agent),
        seed=int(cfg.seed),
        steps=int(steps),
        snapshot_every=int(every),
        run_dir=run_dir,
        train_overrides=tuple(str(o) for o in b.train_overrides),
        progress=str(cfg.progress),
    )


def validate_collect_config(cfg: Any) -> None:
    """One-line errors for a bad kind, env, size or budget, before any work."""
    from robolearn.config.validate import group_options
    from robolearn.errors import close_matches

    if cfg.kind not in KINDS:
        raise UserError(
            f"kind={cfg.kind} is not a dataset kind{close_matches(str(cfg.kind), KINDS)}; choose one of {', '.join(KINDS)}"
        )
    envs = group_options("env")
    if cfg.env.id not in envs:
        raise UserError(
            f"env={cfg.env.id} has no configs/env/{cfg.env.id}.yaml{close_matches(str(cfg.env.id), envs)}; "
            f"collect trains its behaviour policy with robolearn.train, which knows {', '.join(envs)}"
        )
    if cfg.size is None and cfg.kind != "medium-replay":
        raise UserError(f"kind={cfg.kind} needs size=<steps>, e.g. size=100000 (D4RL's are 1M)")
    if cfg.size is not None and (not isinstance(cfg.size, int) or isinstance(cfg.size, bool) or cfg.size < 1):
        raise UserError(f"size={cfg.size} must be a positive whole number of steps, e.g. size=100000")
    if cfg.behavior.agent not in ("sac", "td3"):
        raise UserError(f"behavior.agent={cfg.behavior.agent}: behaviour policies are sac or td3")
    if not 0.0 < float(cfg.medium_fraction) < 1.0:
        raise UserError(f"medium_fraction={cfg.medium_fraction} must lie in (0, 1); D4RL's is 1/3")
    if int(cfg.ref_episodes) < 1:
        raise UserError(f"ref_episodes={cfg.ref_episodes} must be at least 1 (D4RL-style references)")
    spec = behavior_spec(cfg)
    if spec.steps < 1 or spec.snapshot_every < 1 or spec.snapshot_every > spec.steps:
        raise UserError(
            f"behavior.steps={spec.steps}, behavior.snapshot_every={spec.snapshot_every}: "
            "need 1 <= snapshot_every <= steps"
        )
    from robolearn.config.validate import compose_config, validate_train_config

    # The behaviour run's own config, checked as robolearn.train would (bad train_overrides fail here).
    validate_train_config(compose_config("train", spec.train_overrides_for(spec.steps)))
    data = dataset_dir(cfg.out or dataset_id_for(cfg))
    if (data / "metadata.json").exists() and not cfg.overwrite:
        raise UserError(
            f"{data.parent} already holds a dataset; pass overwrite=true to replace it or pick out="
        )


def collect(cfg: Any, command: str) -> Path:
    """Train or reuse the behaviour run, collect the asked kind, write the dataset; returns its data/ folder."""
    from omegaconf import OmegaConf

    from robolearn.envs import make_env
    from robolearn.runs.checkpoint import latest_checkpoint
    from robolearn.runs.layout import RunDir
    from robolearn.utils.sysinfo import cpu_info, package_versions

    validate_collect_config(cfg)
    t0 = time.perf_counter()
    spec = behavior_spec(cfg)
    kind, seed = str(cfg.kind), int(cfg.seed)
    snaps = ensure_behavior_run(spec)
    run_cfg = OmegaConf.load(spec.run_dir / "config.yaml")
    env_cfg = run_cfg.env
    env = make_env(env_cfg)
    env_kwargs = dict(OmegaConf.to_container(env_cfg.kwargs, resolve=True) or {})  # type: ignore[arg-type]
    algo, noise = str(run_cfg.agent.algo), float(cfg.behavior.noise)
    expert = snaps[-1]
    expert_policy = load_policy(expert, algo, noise)
    refs = reference_returns(spec.run_dir, env, expert, expert_policy, int(cfg.ref_episodes), seed)
    learning_starts = int(run_cfg.agent.get("learning_starts", 0))
    medium, _ = choose_policies(snaps, float(cfg.medium_fraction), refs["ref_min_score"], learning_starts)

    def snap_facts(s: Snapshot) -> dict[str, Any]:
        return {"path": str(s.path.resolve()), "step": s.step, "eval_mean_return": s.mean_return}

    size = cfg.size
    parts: list[dict[str, Any]] = []
    episodes: list[Episode] = []
    if kind == "medium-replay":
        ckpt = latest_checkpoint(RunDir(spec.run_dir))
        if ckpt is None or not (ckpt.path / "replay_buffer.npz").is_file():
            raise UserError(
                f"{spec.run_dir} keeps no replay buffer (checkpoint.save_replay_buffer=false); medium-replay needs it"
            )
        steps = medium.step if size is None else min(int(size), medium.step)
        assert isinstance(env.action_space, spaces.Box)
        episodes = replay_episodes(ckpt.path / "replay_buffer.npz", steps, env.action_space)
        parts.append(
            {
                "source": "replay_buffer",
                "file": str((ckpt.path / "replay_buffer.npz").resolve()),
                "first_steps": steps,
                "up_to_policy": snap_facts(medium),
            }
        )
    else:
        plan: list[tuple[str, BehaviorPolicy]] = []
        if kind == "random":
            plan.append(("random", initial_policy(spec.run_dir, noise)))
        if kind in ("medium", "medium-expert"):
            plan.append(("medium", load_policy(medium, algo, noise)))
        if kind in ("expert", "medium-expert"):
            plan.append(("expert", expert_policy))
        for part, policy in plan:
            first = kind_seed(seed, part)
            facts: dict[str, Any] = {
                "source": part,
                "steps": int(size),
                "first_reset_seed": first,
                "policy_seed": first,
            }
            if part == "random":
                facts["policy"] = f"the behaviour run's initial policy (seed {spec.seed}, no update)"
            else:
                facts["policy"] = snap_facts(medium if part == "medium" else expert)
            eps = (
                _collected_part(default_dataset_id(spec.env, part, seed), facts, spec)
                if kind != part
                else None
            )
            if eps is None:
                eps = list(rollout_episodes(env, policy, int(size), first, first))
            else:
                facts["reused_from"] = default_dataset_id(spec.env, part, seed)
            episodes.extend(eps)
            parts.append({**facts, "episodes": len(eps)})
    env.close()
    out = cfg.out or dataset_id_for(cfg)
    provenance = {
        "command": command,
        "kind": kind,
        "size": None if size is None else int(size),
        "seed": seed,
        "parts": parts,
        "behavior": {
            "run_dir": str(spec.run_dir.resolve()),
            "agent": spec.agent,
            "seed": spec.seed,
            "steps": spec.steps,
            "snapshot_every": spec.snapshot_every,
            "train_overrides": list(spec.train_overrides),
            "stochastic": True,
            "td3_noise": noise if algo == "td3" else None,
            "medium_fraction": float(cfg.medium_fraction),
            "medium_after_step": learning_starts,
            "medium_target_return": refs["ref_min_score"]
            + float(cfg.medium_fraction) * (expert.mean_return - refs["ref_min_score"]),
            "medium": snap_facts(medium),
            "expert": snap_facts(expert),
            "eval_returns": {str(s.step): s.mean_return for s in snaps},
            "eval_episodes": expert.episodes,
            "eval": "deterministic, the run's own evaluation (seed + eval.seed_offset + i)",
        },
        "references": refs,
        "versions": package_versions(),
        "cpu": cpu_info(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    data = write_dataset(
        out,
        episodes,
        dataset_id=dataset_id_for(cfg),
        observation_space=_float32_space(env.observation_space),
        action_space=_float32_space(env.action_space),
        env_id=spec.env,
        env_kwargs=env_kwargs,
        ref_min_score=refs["ref_min_score"],
        ref_max_score=refs["ref_max_score"],
        author="robolearn.collect",
        algorithm_name=f"{spec.agent} behaviour policy ({kind}, D4RL recipe)",
        description=f"D4RL-style {kind} data on {spec.env}: {spec.agent} behaviour run of {spec.steps} steps",
        provenance=provenance,
        overwrite=bool(cfg.overwrite),
    )
    steps_written = sum(ep.steps for ep in episodes)
    mean = float(np.mean([np.sum(ep.rewards) for ep in episodes]))
    print(
        f"{kind} on {spec.env}: {steps_written} steps in {len(episodes)} episodes (mean return {mean:.1f}; "
        f"references random {refs['ref_min_score']:.1f}, expert {refs['ref_max_score']:.1f}) -> {data}",
        flush=True,
    )
    return data


# ----- schema ---------------------------------------------------------------------------------------
@dataclass
class BehaviorConfig:
    """Schema of collect.yaml's behavior node."""

    dir: str | None = None
    agent: str = "sac"
    steps: int | None = None
    snapshot_every: int | None = None
    noise: float = 0.1
    train_overrides: list[str] = field(default_factory=list)


@dataclass
class CollectConfig:
    """Schema of configs/collect.yaml."""

    env: EnvConfig = field(default_factory=EnvConfig)
    kind: str = "medium"
    size: int | None = None
    seed: int = 0
    out: str | None = None
    overwrite: bool = False
    medium_fraction: float = 1.0 / 3.0
    ref_episodes: int = 10
    progress: str = "lines"
    behavior: BehaviorConfig = field(default_factory=BehaviorConfig)
    budgets: dict[str, Any] = field(default_factory=dict)


def register_collect_schema() -> None:
    """Register collect's schema with Hydra's ConfigStore (and the project's schemas it composes)."""
    from hydra.core.config_store import ConfigStore

    from robolearn.config.schema import register_schemas

    register_schemas()
    ConfigStore.instance().store(name="collect_schema", node=CollectConfig)
