"""CEM and MPPI: find a known quadratic's optimum, warm-start, respect bounds and terminations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robolearn.errors import UserError
from robolearn.mbrl.models import EnsembleDynamics
from robolearn.mbrl.planners import CEMPlanner, MPPIPlanner, rollout_returns

TARGET = torch.tensor([0.5, -0.3, 0.2])


class Integrator:
    """next = obs + act, exactly (a model with the planners' interface)."""

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        nxt = obs + act
        return nxt, torch.zeros_like(nxt)


def quadratic_reward(obs: torch.Tensor, act: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
    """-(obs + act - target)^2: best is to step onto the target at once and stay."""
    return -((next_obs - TARGET) ** 2).sum(-1)


def make_planner(kind: str, **kw: float) -> CEMPlanner | MPPIPlanner:
    low, high = -torch.ones(3), torch.ones(3)
    if kind == "cem":
        return CEMPlanner(low, high, horizon=3, samples=400, elites=40, iterations=10, seed=0, **kw)  # type: ignore[arg-type]
    return MPPIPlanner(
        low,
        high,
        horizon=3,
        samples=400,
        iterations=20,
        temperature=0.02,
        noise_std=0.1,
        seed=0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_planner_finds_the_quadratic_optimum(kind: str) -> None:
    obs = torch.tensor([0.1, 0.1, -0.2])
    planner = make_planner(kind)
    model = Integrator()
    action = planner.plan(model, quadratic_reward, obs)
    assert action.shape == (3,)
    torch.testing.assert_close(action, TARGET - obs, atol=0.06, rtol=0)
    # Closed loop (MPC, warm-started from the shifted plan): the state settles on the target.
    state = obs + action
    for _ in range(3):
        state = state + planner.plan(model, quadratic_reward, state)
    torch.testing.assert_close(state, TARGET, atol=0.03, rtol=0)
    # The model saw every sample at once: one call per horizon step and iteration, not per sample.
    assert model.calls == 4 * planner.iterations * planner.horizon


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_plan_stays_inside_the_action_box(kind: str) -> None:
    planner = make_planner(kind)
    far = torch.tensor([5.0, -5.0, 5.0])

    def reward(obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return -((nxt - far) ** 2).sum(-1)

    action = planner.plan(Integrator(), reward, torch.zeros(3))
    assert bool((action.abs() <= 1.0).all())
    torch.testing.assert_close(action, torch.tensor([1.0, -1.0, 1.0]), atol=0.05, rtol=0)


def test_warm_start_shifts_the_previous_plan() -> None:
    planner = make_planner("cem")
    planner.plan(Integrator(), quadratic_reward, torch.zeros(3))
    previous = planner.plan_actions
    assert previous is not None and previous.shape == (3, 3)
    start = planner._warm_start()
    torch.testing.assert_close(start[:-1], previous[1:])
    torch.testing.assert_close(start[-1], planner.middle)
    planner.reset()
    torch.testing.assert_close(planner._warm_start(), planner.middle.expand(3, 3))


def test_termination_zeroes_later_rewards() -> None:
    # Reward 1 per step; done once the state passes 1.5: sequences of +1 actions end after step 2.
    actions = torch.stack([torch.ones(5, 1), torch.zeros(5, 1)])  # [2, H=5, 1]

    def one(obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return torch.ones(obs.shape[0])

    def done(obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor) -> torch.Tensor:
        return nxt[:, 0] > 1.5

    returns = rollout_returns(Integrator(), one, torch.zeros(1), actions, done)
    torch.testing.assert_close(returns, torch.tensor([2.0, 5.0]))
    discounted = rollout_returns(Integrator(), one, torch.zeros(1), actions, None, discount=0.5)
    torch.testing.assert_close(discounted, torch.tensor([1.9375, 1.9375]))


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_planner_plans_with_an_ensemble(kind: str) -> None:
    model = EnsembleDynamics(3, 3, hidden=(16,), members=3, seed=0)
    action = make_planner(kind).plan(model, quadratic_reward, torch.zeros(3))
    assert action.shape == (3,) and bool(torch.isfinite(action).all())


def test_bad_planner_settings_are_user_errors() -> None:
    with pytest.raises(UserError, match="elites=50"):
        CEMPlanner(-torch.ones(1), torch.ones(1), horizon=3, samples=10, elites=50, iterations=2)
    with pytest.raises(UserError, match="horizon=0"):
        MPPIPlanner(-torch.ones(1), torch.ones(1), horizon=0, samples=10)
    with pytest.raises(UserError, match="must exceed"):
        CEMPlanner(torch.ones(1), -torch.ones(1), horizon=3, samples=10, elites=5, iterations=2)
    with pytest.raises(UserError, match="finite"):
        CEMPlanner(-torch.ones(1) * torch.inf, torch.ones(1), horizon=3, samples=10, elites=5, iterations=2)


class PendulumPhysics:
    """Pendulum-v1's own equations (gymnasium/envs/classic_control/pendulum.py) in torch: a perfect model."""

    def predict(self, obs: torch.Tensor, act: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        th = torch.atan2(obs[..., 1], obs[..., 0])
        u = act[..., 0].clamp(-2.0, 2.0)
        thdot = (obs[..., 2] + (3 * 10.0 / 2 * torch.sin(th) + 3.0 * u) * 0.05).clamp(-8.0, 8.0)
        th = th + thdot * 0.05
        nxt = torch.stack([torch.cos(th), torch.sin(th), thdot], dim=-1)
        return nxt, torch.zeros_like(nxt)


@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_planner_with_a_perfect_model_swings_up_the_real_pendulum(kind: str) -> None:
    import gymnasium as gym

    from robolearn.mbrl.envfns import env_functions

    env = gym.make("Pendulum-v1")
    obs, _ = env.reset(seed=3)
    reward_fn, done_fn = env_functions("Pendulum-v1")
    space = env.action_space
    assert isinstance(space, gym.spaces.Box)
    low, high = torch.as_tensor(space.low), torch.as_tensor(space.high)
    if kind == "cem":
        planner: CEMPlanner | MPPIPlanner = CEMPlanner(
            low, high, horizon=15, samples=100, elites=10, iterations=3, seed=0
        )
    else:
        planner = MPPIPlanner(
            low, high, horizon=15, samples=100, iterations=3, temperature=0.5, noise_std=0.5, seed=0
        )
    angles = []
    for _ in range(80):  # from hanging at seed 3, both settle upright by step ~46
        action = planner.plan(PendulumPhysics(), reward_fn, torch.as_tensor(obs), done_fn)
        obs, _, _, _, _ = env.step(action.numpy())
        angles.append(abs(float(np.arctan2(obs[1], obs[0]))))
    env.close()
    # Swung up and held over the last 25 steps (it starts hanging: |angle| near pi).
    assert angles[0] > 2.0
    assert max(angles[-25:]) < 0.2, f"final angles {angles[-25:]}"
