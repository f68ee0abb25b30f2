"""MOREC: the dynamics-reward filter and the adversarial learning of the dynamics reward (issue 21)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.datasets import Episode, load_dataset, write_dataset
from robolearn.errors import UserError
from robolearn.mbrl.models import EnsembleDynamics
from robolearn.mbrl.offline.morec import (
    DynamicsReward,
    FilterSettings,
    RewardLearningSettings,
    auc,
    learn_dynamics_reward,
    load_or_learn_dynamics_reward,
    make_morec_filter,
    score_to_reward,
    select_candidates,
)
from robolearn.mbrl.offline.rollout import ModelBuffer, rollout

OBS, ACT = 4, 2


def _linear_system(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """s' = A s + B a + small noise: a toy system whose true transitions are known."""
    rng = np.random.default_rng(1234)  # the same system for every draw
    a_mat = rng.normal(size=(OBS, OBS)) * 0.3
    a_mat *= 0.9 / max(1.0, float(np.abs(np.linalg.eigvals(a_mat)).max()))
    b_mat = rng.normal(size=(OBS, ACT)) * 0.5
    data = np.random.default_rng(seed)
    obs = data.normal(size=(n, OBS)).astype(np.float32)
    act = data.uniform(-1, 1, size=(n, ACT)).astype(np.float32)
    nxt = (obs @ a_mat.T + act @ b_mat.T + 0.01 * data.normal(size=(n, OBS))).astype(np.float32)
    return obs, act, nxt, a_mat, b_mat


def _delta0_reward() -> DynamicsReward:
    """A hand-built reward whose score is sigmoid(clamp(s'_0 - s_0, -1, 1)): analytic, for the filter tests."""
    r = DynamicsReward(OBS, ACT, hidden=(), count=1)
    with torch.no_grad():
        r.weights[0].zero_()
        r.weights[0][0, 0, OBS + ACT] = 1.0  # input layout (s, a, s' - s): delta_0 sits at OBS + ACT
        r.lo.fill_(-1.0)
        r.hi.fill_(1.0)
    return r


def test_delta0_reward_is_analytic() -> None:
    r = _delta0_reward()
    obs = torch.zeros(5, OBS)
    nxt = torch.zeros(5, OBS)
    nxt[:, 0] = torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0])
    expected = torch.sigmoid(nxt[:, 0].clamp(-1, 1))
    assert torch.allclose(r.score(obs, torch.zeros(5, ACT), nxt), expected)


def test_filter_keeps_the_highest_scoring_candidate_per_input() -> None:
    gen = torch.Generator().manual_seed(0)
    k, b = 10, 64
    obs = torch.randn(b, OBS, generator=gen)
    act = torch.rand(b, ACT, generator=gen) * 2 - 1
    cand = obs + torch.randn(k, b, OBS, generator=gen)
    cand_rew = torch.randn(k, b, generator=gen)
    reward = _delta0_reward()
    nxt, rew, keep, score = make_morec_filter(reward, {"threshold": 0.0})(obs, act, cand, cand_rew)
    scores = reward.score(obs.unsqueeze(0), act.unsqueeze(0), cand)  # [K, B]
    best = scores.argmax(0)
    rows = torch.arange(b)
    assert torch.equal(nxt, cand[best, rows])
    assert torch.equal(rew, cand_rew[best, rows])  # the reward travels with its own candidate
    assert torch.allclose(score, scores.max(0).values)
    assert keep.all()
    # No other candidate beats the chosen one.
    assert (scores <= score.unsqueeze(0)).all()


def test_select_candidates_threshold_on_reward_scale() -> None:
    score = torch.tensor([[0.30, 0.70], [0.40, 0.50]])  # [K=2, B=2]
    cand = torch.arange(8.0).reshape(2, 2, 2)
    _, _, keep, chosen = select_candidates(score, cand, torch.zeros(2, 2), FilterSettings(threshold=0.6))
    assert torch.allclose(chosen, torch.tensor([0.40, 0.70]))
    # r = -log(1 - p): 0.40 -> 0.51 < 0.6 (stop), 0.70 -> 1.20 (keep).
    assert keep.tolist() == [False, True]
    assert math.isclose(float(score_to_reward(torch.tensor(1 - math.exp(-0.6)))), 0.6, rel_tol=1e-5)


def test_softmax_selection_prefers_high_scores() -> None:
    score = torch.tensor([[0.27], [0.73]]).expand(2, 2000).contiguous()
    cand = torch.stack([torch.zeros(2000, 1), torch.ones(2000, 1)])
    nxt, _, _, _ = select_candidates(
        score,
        cand,
        torch.zeros(2, 2000),
        FilterSettings(selection="softmax"),
        torch.Generator().manual_seed(0),
    )
    # softmax((r1 - r0) / 0.1) with r = -log(1 - p): P(pick 1) = 1 / (1 + exp(-(1.309 - 0.315) / 0.1)) ~ 1.
    assert float(nxt.mean()) > 0.99


def _roll(threshold: float, *, reject_as_terminal: bool = False) -> tuple[ModelBuffer, Any]:
    """20-step rollouts of 256 starts through the real rollout() with the analytic delta_0 reward as filter."""
    torch.manual_seed(0)
    model = EnsembleDynamics(OBS, ACT, hidden=(16,), members=3, seed=0, reward_dim=1, num_elites=2)
    with torch.no_grad():  # a wide predictive spread, so candidates straddle the threshold
        model.out_norm.std.fill_(1.0)
    buf = ModelBuffer(HORIZON * BATCH, OBS, ACT)
    stats = rollout(
        model,
        lambda o: torch.zeros(len(o), ACT),
        torch.randn(BATCH, OBS),
        HORIZON,
        buf,
        act_scale=(-torch.ones(ACT), torch.ones(ACT)),
        step_filter=make_morec_filter(_delta0_reward(), {"threshold": threshold}),
        samples_per_member=2,
        reject_as_terminal=reject_as_terminal,
    )
    return buf, stats


HORIZON, BATCH = 20, 256
MIN_SCORE = 1 - math.exp(-0.6)
MIN_DELTA0 = math.log(MIN_SCORE / (1 - MIN_SCORE))  # sigmoid^-1: the smallest delta_0 the 0.6 threshold keeps


def test_rollouts_stop_where_the_best_candidate_falls_below_the_threshold() -> None:
    buf, stats = _roll(0.6)
    delta0 = buf.data["next_obs"][: buf.size, 0] - buf.data["obs"][: buf.size, 0]
    assert buf.size == stats.transitions > 0
    assert (delta0 >= MIN_DELTA0 - 1e-5).all()  # nothing below the threshold is stored
    assert stats.filtered > 0  # and some rollouts were ended by it
    assert stats.mean_length < HORIZON
    # A threshold above the largest possible reward (score <= sigmoid(1)) ends every rollout at once.
    buf2, stats2 = _roll(1.4)
    assert buf2.size == 0 and stats2.filtered == BATCH and stats2.mean_length == 0


def test_rejected_steps_are_stored_as_terminal_with_on_reject_terminal() -> None:
    # The released MOREC code's semantics (configs/filter/morec.yaml on_reject: terminal).
    buf, _ = _roll(0.6, reject_as_terminal=True)
    delta0 = buf.data["next_obs"][: buf.size, 0] - buf.data["obs"][: buf.size, 0]
    done = buf.data["done"][: buf.size]
    below = delta0 < MIN_DELTA0 - 1e-5
    assert below.any() and (done[below] == 1).all()  # every rejected step is there, as a terminal one


def test_learned_reward_ranks_real_transitions_above_corrupted_ones() -> None:
    torch.manual_seed(0)
    obs, act, nxt, _, _ = _linear_system(3000, seed=0)
    settings = RewardLearningSettings(rounds=500, snapshot_every=25, gen_hidden=(64, 64))
    reward = learn_dynamics_reward(obs, act, nxt, settings, seed=0)
    assert 1 <= reward.count <= settings.max_discriminators
    # Held-out (s, a) pairs the game never saw: the true next state vs a corrupted one.
    o2, a2, n2, _, _ = _linear_system(2000, seed=99)
    rng = np.random.default_rng(7)
    bad = n2 + 0.5 * n2.std(0) * rng.normal(size=n2.shape).astype(np.float32)
    t = torch.as_tensor
    real_score = reward.score(t(o2), t(a2), t(n2))
    bad_score = reward.score(t(o2), t(a2), t(bad))
    assert ((real_score > 0) & (real_score < 1)).all()
    assert auc(real_score, bad_score) > 0.9


def test_auc_matches_hand_values() -> None:
    assert auc(np.array([1.0, 2.0]), np.array([0.0, 0.5])) == 1.0
    assert auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert auc(np.array([1.0, 0.0]), np.array([0.5, 0.5])) == 0.5
    assert auc(np.array([1.0]), np.array([1.0])) == 0.5  # ties count one half


def _tiny_dataset(tmp_path: Path, name: str, obs_dim: int, n_eps: int = 4, steps: int = 50) -> Path:
    rng = np.random.default_rng(0)
    eps = []
    for i in range(n_eps):
        o = rng.normal(size=(steps + 1, obs_dim)).astype(np.float32)
        eps.append(
            Episode(
                observations=o,
                actions=rng.uniform(-1, 1, size=(steps, ACT)).astype(np.float32),
                rewards=np.zeros(steps, dtype=np.float32),
                terminations=np.zeros(steps, dtype=bool),
                truncations=np.eye(1, steps, steps - 1, dtype=bool)[0],
                seed=i,
            )
        )
    box = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    return write_dataset(
        tmp_path / name,
        eps,
        dataset_id=f"test/{name}-v0",
        observation_space=box,
        action_space=gym.spaces.Box(-1, 1, (ACT,), np.float32),
    )


def test_save_load_round_trip_and_reuse(tmp_path: Path) -> None:
    data = load_dataset(_tiny_dataset(tmp_path, "lin", OBS))
    cfg = {"learn": {"rounds": 40, "snapshot_every": 10, "gen_hidden": [16], "disc_hidden": [16]}}
    path = tmp_path / "dynamics_reward.pt"
    learned = load_or_learn_dynamics_reward(data, cfg, path, seed=0, device="cpu")
    assert path.is_file() and learned.info["dataset_id"] == "test/lin-v0"
    again = load_or_learn_dynamics_reward(
        data, {"learn": {"rounds": 1}}, path, seed=5, device="cpu"
    )  # loads, no learning
    g = torch.Generator().manual_seed(3)
    o, a, n = (
        torch.randn(100, OBS, generator=g),
        torch.randn(100, ACT, generator=g),
        torch.randn(100, OBS, generator=g),
    )
    assert torch.equal(learned.score(o, a, n), again.score(o, a, n))
    assert again.count == learned.count and again.info["rounds"] == 40
    # A reward learned for other dims is refused with one line naming the file.
    other = load_dataset(_tiny_dataset(tmp_path, "wide", OBS + 1))
    with pytest.raises(UserError, match=r"reward_path=.*learned for obs 4"):
        load_or_learn_dynamics_reward(other, cfg, path, seed=0, device="cpu")


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown filter.learn setting 'roundz'"):
        RewardLearningSettings.from_mapping({"roundz": 3})
    with pytest.raises(UserError, match=r"filter.selection='best'"):
        FilterSettings.from_mapping({"selection": "best"})
    with pytest.raises(UserError, match="no dynamics reward file"):
        DynamicsReward.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match=r"junk.pt: not a dynamics reward"):
        DynamicsReward.load(tmp_path / "junk.pt")
    with pytest.raises(UserError, match="NaN"):
        bad = np.full((20, OBS), np.nan, dtype=np.float32)
        learn_dynamics_reward(bad, np.zeros((20, ACT), np.float32), bad)
