"""Random-policy and reference returns used to normalise scores: 0 = random, 1 = reference.

Only environments with a citable source are listed; anything else is reported in raw returns only.
Scores are keyed by environment family (the id without namespace and version), because published
figures were measured on older versions of the same task; `measured_on` names that version and the
report flags a normalised score whose run used another version. Sources:

- D4RL: Fu et al., "D4RL: Datasets for Deep Data-Driven Reinforcement Learning" (arXiv:2004.07219),
  REF_MIN_SCORE / REF_MAX_SCORE in d4rl/infos.py (github.com/Farama-Foundation/D4RL). The min score is a
  random policy, the max an expert SAC policy, on the gym -v2 MuJoCo tasks. Offline-RL papers report
  "D4RL normalised score" with exactly these numbers, so our MOPO/MOBILE results stay comparable.
- JAT: Gallouédec et al., "Jack of All Trades, Master of Some" (arXiv:2402.09844), jat/eval/rl/
  scores_dict.json (github.com/huggingface/jat): uniform random actions over 1M steps, and the mean
  return of their expert agents, on gymnasium -v4 tasks.
- RL Zoo: Raffin, RL Baselines3 Zoo, benchmark.md (github.com/DLR-RM/rl-baselines3-zoo): the best
  trained agent listed for the task.
- robolearn: measured here with `measure_random_return` (uniform random actions, the seeds noted),
  where no published random score exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

D4RL = "D4RL (Fu et al. 2020, d4rl/infos.py)"
JAT = "JAT (Gallouédec et al. 2024, jat/eval/rl/scores_dict.json)"


@dataclass(frozen=True)
class ReferenceScores:
    """Returns of a random policy and of a reference policy for one environment family."""

    random: float
    reference: float
    random_source: str
    reference_source: str
    measured_on: str  # the env id the figures were measured on
    note: str = ""


REFERENCES: dict[str, ReferenceScores] = {
    "Hopper": ReferenceScores(-20.272305, 3234.3, D4RL, D4RL + ", expert SAC", "Hopper-v2"),
    "HalfCheetah": ReferenceScores(-280.178953, 12135.0, D4RL, D4RL + ", expert SAC", "HalfCheetah-v2"),
    "Walker2d": ReferenceScores(1.629008, 4592.3, D4RL, D4RL + ", expert SAC", "Walker2d-v2"),
    "Ant": ReferenceScores(
        -325.6,
        3879.7,
        D4RL,
        D4RL + ", expert SAC",
        "Ant-v2",
        note="Ant-v2's reward has a contact cost that -v4/-v5 drop by default: a random policy scores "
        "about -20 on Ant-v5, so normalised Ant-v5 scores sit about 0.08 above the D4RL scale.",
    ),
    "Humanoid": ReferenceScores(122.02474415145262, 6281.018018388748, JAT, JAT + ", expert", "Humanoid-v4"),
    "HumanoidStandup": ReferenceScores(
        33135.75209445684, 273574.156917572, JAT, JAT + ", expert", "HumanoidStandup-v4"
    ),
    "InvertedPendulum": ReferenceScores(
        6.07022623665313,
        1000.0,
        JAT,
        "maximum return: +1 per step for the 1000-step time limit (gymnasium docs)",
        "InvertedPendulum-v4",
    ),
    "InvertedDoublePendulum": ReferenceScores(
        57.45508886511171, 9338.693291506766, JAT, JAT + ", expert", "InvertedDoublePendulum-v4"
    ),
    "Reacher": ReferenceScores(-43.00200688412679, -5.678413943281723, JAT, JAT + ", expert", "Reacher-v4"),
    "Pusher": ReferenceScores(-149.68649210713016, -25.21096888868585, JAT, JAT + ", expert", "Pusher-v4"),
    "Swimmer": ReferenceScores(
        0.8049658244923349,
        359.127,
        JAT,
        "RL Zoo benchmark.md, TD3 on Swimmer-v3 (the best listed)",
        "Swimmer-v4",
        note="The random score is from Swimmer-v4 and the reference from Swimmer-v3 (same dynamics and reward).",
    ),
    "Pendulum": ReferenceScores(
        -1230.65,
        -151.340,
        "robolearn: measure_random_return('Pendulum-v1', episodes=1000, seed=0), gymnasium 1.4",
        "RL Zoo benchmark.md, TQC on Pendulum-v1 (the best listed)",
        "Pendulum-v1",
    ),
}

_VERSION = re.compile(r"-v\d+$")


def env_family(env_id: str) -> str:
    """'robolearn/Go2Walk-v1' -> 'Go2Walk', 'Hopper-v5' -> 'Hopper'."""
    return _VERSION.sub("", env_id.rsplit("/", 1)[-1])


def reference_for(env_id: str) -> ReferenceScores | None:
    """The reference scores for an environment id, or None when none are sourced."""
    # Only gymnasium's own ids (no namespace) match: a robolearn task named like a gym one is not the
    # same task and must not be normalised with its scores.
    if "/" in env_id:
        return None
    return REFERENCES.get(env_family(env_id))


def measure_random_return(env_id: str, episodes: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Mean and std of the return of uniform random actions over `episodes` episodes (reset seeds seed+i)."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    try:
        for i in range(episodes):
            env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    mean = sum(returns) / len(returns)
    std = (sum((r - mean) ** 2 for r in returns) / len(returns)) ** 0.5
    return mean, std
