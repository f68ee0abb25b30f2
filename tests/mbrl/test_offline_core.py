"""Offline MBRL pieces: MOPO's and MOBILE's penalties against hand values, the ensemble's elites and reward
head, and branched rollouts (termination, horizon, the step-filter hook)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.errors import UserError
from robolearn.mbrl.models import EnsembleDynamics
from robolearn.mbrl.offline.penalties import mobile_penalty, mobile_penalty_from_q, mopo_penalty
from robolearn.mbrl.offline.rollout import ModelBuffer, rollout, termination_fn
from robolearn.mbrl.offline.sac import SAC, Batch, SACConfig


def test_mopo_penalty_is_the_largest_members_std_norm() -> None:
    # Member 0's stds: (3, 4) -> 5 and (0, 1) -> 1; member 1's: (0, 0) -> 0 and (6, 8) -> 10.
    std = torch.tensor([[[3.0, 4.0], [0.0, 1.0]], [[0.0, 0.0], [6.0, 8.0]]])
    assert mopo_penalty(std).tolist() == [5.0, 10.0]


def test_mobile_penalty_is_the_members_spread_of_mean_sampled_targets() -> None:
    # q [S=2, M=3, B=1]: per-member sample means 2, 4, 6 -> unbiased std 2.
    q = torch.tensor([[[1.0], [4.0], [6.0]], [[3.0], [4.0], [6.0]]])
    assert mobile_penalty_from_q(q).tolist() == [2.0]
    # From states: target value = the state's first coordinate; [S=2, M=3, B=2, o=1].
    states = torch.stack([q.squeeze(-1), 2 * q.squeeze(-1)], dim=-1).unsqueeze(-1)
    pen = mobile_penalty(states, lambda s: s[:, 0])
    assert pen.tolist() == pytest.approx([2.0, 4.0])


def test_sac_target_value_is_the_min_over_target_critics() -> None:
    torch.manual_seed(0)
    sac = SAC(3, 2, SACConfig(hidden=(8,), num_critics=3))
    obs = torch.randn(5, 3)
    torch.manual_seed(1)
    v = sac.target_value(obs)
    torch.manual_seed(1)
    a, _ = sac.actor(obs)
    assert torch.allclose(v, sac.target_critics(obs, a).min(dim=0).values)


def test_sac_update_fits_a_one_step_bandit() -> None:
    # Terminal transitions with reward 1 - |a|: Q must learn it and the actor move towards a = 0.
    torch.manual_seed(0)
    sac = SAC(1, 1, SACConfig(hidden=(32, 32), actor_lr=3e-3, critic_lr=3e-3, auto_alpha=False, alpha=0.01))
    for _ in range(400):
        obs = torch.zeros(64, 1)
        act = torch.rand(64, 1) * 2 - 1
        rew = 1 - act.abs().squeeze(-1)
        sac.update(Batch(obs, act, rew, obs, torch.ones(64)))
    a = sac.act(torch.zeros(1, 1), deterministic=True)
    assert abs(float(a)) < 0.2
    q = sac.critics(torch.zeros(1, 1), torch.zeros(1, 1))
    assert torch.allclose(q, torch.ones_like(q), atol=0.15)


def _toy_data(n: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    nxt = obs + 0.1 * np.concatenate([obs[:, 1:], act], axis=1)
    rew = (obs[:, 0] - act[:, 0] ** 2).astype(np.float32)
    return obs, act, nxt.astype(np.float32), rew


def test_reward_head_learns_a_toy_reward_and_elites_are_the_best_members() -> None:
    obs, act, nxt, rew = _toy_data(600, 0)
    model = EnsembleDynamics(2, 1, hidden=(32, 32), members=5, seed=0, reward_dim=1, num_elites=3)
    model.fit(obs, act, nxt, reward=rew, epochs=60, batch_size=64, lr=3e-3, seed=3, val_fraction=0.2)
    # Held-out pairs: the mean reward prediction explains the reward.
    o, a, n, r = _toy_data(300, 1)
    with torch.no_grad():
        pred = model.predict(torch.as_tensor(o), torch.as_tensor(a))[0]
    assert pred.shape == (300, 3)
    r_hat = pred[:, 2].numpy()
    assert 1 - np.mean((r_hat - r) ** 2) / np.var(r) > 0.9
    assert np.abs(pred[:, :2].numpy() - n).mean() < 0.05
    # Elites: the members with the lowest held-out error on fit's own split (same seed, same permutation).
    gen = torch.Generator().manual_seed(3)
    perm = torch.randperm(600, generator=gen)
    val = perm[: round(600 * 0.2)]
    x = torch.cat([torch.as_tensor(obs), torch.as_tensor(act)], -1)[val]
    y = torch.cat([torch.as_tensor(nxt - obs), torch.as_tensor(rew)[:, None]], -1)[val]
    mse = model._val_mse(model.in_norm.normalize(x), model.out_norm.normalize(y))
    assert sorted(model.elites.tolist()) == sorted(torch.argsort(mse)[:3].tolist())
    others = [i for i in range(5) if i not in model.elites.tolist()]
    assert mse[model.elites].max() <= mse[others].min()
    # Saved with the model.
    drawn = model.random_elites(1000)
    assert set(drawn.tolist()) == set(model.elites.tolist())


def test_saved_model_keeps_its_elites_and_reward_head(tmp_path) -> None:  # type: ignore[no-untyped-def]
    obs, act, nxt, rew = _toy_data(200, 0)
    model = EnsembleDynamics(2, 1, hidden=(16,), members=4, seed=0, reward_dim=1, num_elites=2)
    model.fit(obs, act, nxt, reward=rew, epochs=3, seed=0)
    model.save(tmp_path / "m.pt")
    again = EnsembleDynamics.load(tmp_path / "m.pt")
    assert again.elites.tolist() == model.elites.tolist() and again.reward_dim == 1
    o, a = torch.as_tensor(obs[:5]), torch.as_tensor(act[:5])
    with torch.no_grad():
        assert torch.equal(again.predict(o, a)[0], model.predict(o, a)[0])


def test_reward_model_input_errors_are_one_line() -> None:
    obs, act, nxt, rew = _toy_data(50, 0)
    with pytest.raises(UserError, match="reward_dim=1"):
        EnsembleDynamics(2, 1, reward_dim=1).fit(obs, act, nxt)
    with pytest.raises(UserError, match="reward_dim=0"):
        EnsembleDynamics(2, 1).fit(obs, act, nxt, reward=rew)
    with pytest.raises(UserError, match="num_elites=9"):
        EnsembleDynamics(2, 1, members=7, num_elites=9)


def _stepper(members: int = 3, elites: int = 2) -> EnsembleDynamics:
    """A deterministic 'model': every member says next = obs + (1, 0), reward 0.5."""
    model = EnsembleDynamics(
        2, 1, hidden=(4,), members=members, gaussian=False, reward_dim=1, num_elites=elites
    )
    with torch.no_grad():
        for w in model.weights:
            w.zero_()
        for b in model.biases:
            b.zero_()
        model.out_norm.mean.copy_(torch.tensor([1.0, 0.0, 0.5]))
    return model


def _x_at_least(limit: float):  # type: ignore[no-untyped-def]
    return lambda obs, act, nxt: nxt[..., 0] >= limit


@pytest.mark.parametrize(("horizon", "transitions", "terminated"), [(5, 7, 4), (2, 6, 3)])
def test_rollouts_stop_at_termination_and_horizon(horizon: int, transitions: int, terminated: int) -> None:
    # Starts x = 0, 1, 2, 3, terminal when x' >= 3: 3, 2, 1, 1 steps (horizon 5); 2, 2, 1, 1 (horizon 2, x = 0 cut short).
    model = _stepper()
    start = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    buf = ModelBuffer(100, 2, 1)
    box = (torch.tensor([-1.0]), torch.tensor([1.0]))
    stats = rollout(
        model, lambda o: torch.zeros(len(o), 1), start, horizon, buf, act_scale=box, done_fn=_x_at_least(3)
    )
    assert stats.transitions == buf.size == transitions and stats.terminated == terminated
    d = buf.data
    assert torch.equal(d["next_obs"][: buf.size, 0], d["obs"][: buf.size, 0] + 1)
    assert torch.equal(d["done"][: buf.size].bool(), d["next_obs"][: buf.size, 0] >= 3)
    assert torch.allclose(d["rew"][: buf.size], torch.full((buf.size,), 0.5))


def test_step_filter_sees_every_elite_candidate_and_ends_refused_rollouts() -> None:
    model = _stepper(members=4, elites=3)
    seen: list[tuple[int, ...]] = []

    def refuse_from_x1(obs, act, cand_next, cand_rew):  # type: ignore[no-untyped-def]
        seen.append(tuple(cand_next.shape))
        keep = obs[:, 0] < 1  # a step from x >= 1 is refused
        return cand_next[0], cand_rew[0], keep, torch.ones(len(obs))

    start = torch.zeros(2, 2)
    box = (torch.tensor([-1.0]), torch.tensor([1.0]))
    buf = ModelBuffer(100, 2, 1)
    stats = rollout(
        model,
        lambda o: torch.zeros(len(o), 1),
        start,
        5,
        buf,
        act_scale=box,
        step_filter=refuse_from_x1,
        samples_per_member=2,
    )
    assert seen[0] == (3 * 2, 2, 2)  # K = elites x samples
    assert stats.transitions == 2 and stats.filtered == 2 and buf.size == 2  # x: 0 -> 1 kept, 1 -> 2 dropped
    buf2 = ModelBuffer(100, 2, 1)
    stats = rollout(
        model,
        lambda o: torch.zeros(len(o), 1),
        start,
        5,
        buf2,
        act_scale=box,
        step_filter=refuse_from_x1,
        reject_as_terminal=True,
    )
    # MOREC's released behaviour: the refused step is stored as terminal.
    assert buf2.size == 4 and buf2.data["done"][:4].tolist() == [0.0, 0.0, 1.0, 1.0]


def test_hopper_termination_matches_the_env_with_the_default_observation() -> None:
    env = gym.make("Hopper-v5")
    done = termination_fn("Hopper-v5", {}, 11)
    assert done is not None
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    seen_terminal = False
    for _ in range(300):
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        nxt, _, term, trunc, _ = env.step(a)
        pred = done(
            torch.as_tensor(obs[None]),
            torch.as_tensor(a[None]),
            torch.as_tensor(nxt[None], dtype=torch.float32),
        )
        assert bool(pred[0]) == term
        seen_terminal |= term
        obs = nxt
        if term or trunc:
            obs, _ = env.reset()
    assert seen_terminal
    assert termination_fn("Pendulum-v1", {}, 3) is None and termination_fn(None, {}, 3) is None


def test_model_buffer_is_fifo_and_round_trips() -> None:
    buf = ModelBuffer(4, 1, 1)
    for i in range(3):
        v = torch.tensor([[2.0 * i], [2.0 * i + 1]])
        buf.add(obs=v, act=v, rew=v[:, 0], next_obs=v, done=torch.zeros(2))
    assert buf.size == 4 and sorted(buf.data["obs"][:, 0].tolist()) == [2.0, 3.0, 4.0, 5.0]
    again = ModelBuffer(4, 1, 1)
    again.load_state_dict(buf.state_dict())
    assert again.ptr == buf.ptr and torch.equal(again.data["obs"], buf.data["obs"])
    assert math.isclose(float(buf.sample(1000)["obs"].mean()), 3.5, abs_tol=0.2)
