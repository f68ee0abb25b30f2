"""The device velocity task (robolearn/envs/tasks/velocity_device.py) against the numpy task, on Warp's CPU device.

Both step the same MuJoCo Warp physics from identical states (physics state, per-world model fields,
gains and task buffers copied from the device env into the numpy VelocityTask), so their observations,
reward terms, rewards and terminations must agree to float32 accuracy. Skipped without the gpu extra.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("warp", reason="backend=warp needs the gpu extra: pip install 'robolearn[gpu]'")
pytest.importorskip("mujoco_warp", reason="backend=warp needs the gpu extra: pip install 'robolearn[gpu]'")

import torch

from robolearn.envs.backends.base import DYNAMICS_FIELDS
from robolearn.envs.backends.warp_backend import WarpBackend
from robolearn.envs.tasks.velocity import VelocityTask
from robolearn.envs.tasks.velocity_device import DeviceVelocityEnv, make_device_velocity_env
from robolearn.errors import UserError

# Dynamics and gain randomisation on, so the device's per-world draws reach the comparison; no
# observation noise or pushes (their draws come from different generators).
DR = {
    "friction": [0.5, 1.25],
    "joint_friction": [0.5, 1.5],
    "added_base_mass": [-1.0, 3.0],
    "kp_scale": [0.9, 1.1],
    "motor_strength": [0.9, 1.1],
}


def _sync(ref: VelocityTask, dev: DeviceVelocityEnv) -> None:
    """Put the numpy task in the device env's state."""
    backend = ref.backend
    assert isinstance(backend, WarpBackend)
    backend.set_physics_state(dev.backend.get_physics_state())
    for name in DYNAMICS_FIELDS:
        getattr(backend.m, name).assign(getattr(dev.backend.m, name).numpy())
    np64 = lambda t: t.detach().cpu().numpy().astype(np.float64)  # noqa: E731
    ref.command[:] = np64(dev.command)
    ref.command_timer[:] = np64(dev.command_timer)
    ref.last_action[:] = np64(dev.last_action)
    ref.last_joint_vel[:] = np64(dev.last_joint_vel)
    ref.foot_air_time[:] = np64(dev.foot_air_time)
    ref.foot_last_contact[:] = dev.foot_last_contact.cpu().numpy()
    ref.episode_step[:] = dev.episode_length_buf.cpu().numpy()
    ref.kp[:] = np64(dev.views.kp)
    ref.kd[:] = np64(dev.views.kd)
    ref.torque_limit[:] = np64(dev.views.torque_limit)


# Go2 also with the terms its defaults leave off (every device term then runs in one of the two) and
# the privileged base-velocity observation.
GO2_EXTRAS = {
    "reward_scales": {
        "feet_slip": -0.1,
        "pose_deviation": -0.1,
        "base_height": -1.0,
        "joint_vel": -1e-3,
        "alive": 0.1,
    },
    "observe_base_lin_vel": True,
}


@pytest.mark.parametrize(
    ("env_id", "options"),
    [("robolearn/Go2Velocity-v1", GO2_EXTRAS), ("robolearn/G1Velocity-v1", {})],
    ids=["go2", "g1"],
)
def test_device_task_matches_numpy_task_on_the_same_states(env_id: str, options: dict[str, Any]) -> None:
    n, steps = 3, 6
    dev = make_device_velocity_env(env_id, n, seed=0, device="cpu", randomization=DR, **options)
    ref = VelocityTask(
        robot=_robot(env_id),
        num_envs=n,
        backend="warp",
        device="cpu",
        randomization=DR,
        max_episode_steps=dev.max_episode_length,
        **options,
    )
    assert ref.reward_names == dev.reward_names
    obs0 = dev.reset()["policy"]
    # The reset drew per-world dynamics and gains on the device, within the configured ranges.
    friction = dev.views.model["geom_friction"][:, :, 0] / torch.as_tensor(
        dev.backend.model.geom_friction[:, 0]
    )
    assert torch.all((friction > 0.5 - 1e-6) & (friction < 1.25 + 1e-6)) and friction[:, 0].std() > 0.01
    _sync(ref, dev)
    np.testing.assert_allclose(obs0.numpy(), ref.observe(ref.backend.frame()), atol=2e-5)

    weights = ref._reward_weights
    actions = np.random.default_rng(0).uniform(-0.5, 0.5, (steps, n, dev.num_actions)).astype(np.float32)
    for i, a in enumerate(actions):
        if i == steps - 2:
            # Tip env 0 onto its side: both tasks must terminate it and charge the termination term.
            q = dev.views.qpos
            q[0, 3:7] = torch.tensor([math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0])
        _sync(ref, dev)
        obs, reward, done, extras = dev.step(torch.from_numpy(a))
        ref_obs, ref_reward, ref_term, ref_trunc, ref_terms = ref.step_envs(a)
        terminated = extras["terminated"].numpy()
        np.testing.assert_array_equal(terminated, ref_term)
        np.testing.assert_array_equal(done.numpy(), ref_term | ref_trunc)
        ref_weighted = np.stack([ref_terms[k] for k in ref.reward_names], axis=1) * weights
        np.testing.assert_allclose(extras["reward_terms"].numpy(), ref_weighted, rtol=2e-4, atol=2e-6)
        np.testing.assert_allclose(reward.numpy(), ref_reward, rtol=2e-4, atol=2e-6)
        live = ~done.numpy()
        np.testing.assert_allclose(obs["policy"].numpy()[live], ref_obs[live], rtol=1e-4, atol=5e-5)
        if i == steps - 2:
            assert terminated[0] and not terminated[1:].any()
            col = ref.reward_names.index("termination")
            assert extras["reward_terms"][0, col] == pytest.approx(-50.0 * dev.dt)
            # Reset in the same step: a fresh episode whose observation is the numpy task's of that state.
            assert dev.episode_length_buf[0] == 0 and dev.last_action[0].abs().sum() == 0
            _sync(ref, dev)
            np.testing.assert_allclose(
                obs["policy"].numpy()[0], ref.observe(ref.backend.frame())[0], atol=2e-5
            )
    dev.close()
    ref.close()


def _robot(env_id: str) -> str:
    return {"robolearn/Go2Velocity-v1": "go2", "robolearn/G1Velocity-v1": "g1"}[env_id]


def test_device_task_resamples_commands_and_resets_at_the_time_limit() -> None:
    dev = make_device_velocity_env("robolearn/Go2Velocity-v1", 2, seed=1, device="cpu", max_episode_steps=3)
    dev.get_observations()
    zeros = torch.zeros(2, dev.num_actions)
    # Env 1's command is due: it is redrawn within the ranges and its timer restarts; env 0's stays.
    dev.command_timer = torch.tensor([5.0, 0.01])
    dev.command = torch.tensor([[0.3, 0.2, 0.1], [9.0, 9.0, 9.0]])
    for _ in range(2):
        _, _, done, extras = dev.step(zeros)
        assert not done.any()
    assert dev.command[0].tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert (
        dev.command[1, 0].abs() <= 1.0 and dev.command[1, 1].abs() <= 0.5 and dev.command[1, 2].abs() <= 1.0
    )
    assert dev.command_timer.tolist() == pytest.approx([5.0 - 2 * dev.dt, 10.0 - dev.dt])
    _, _, done, extras = dev.step(zeros)
    assert done.all() and extras["time_outs"].tolist() == [1.0, 1.0]
    assert dev.episode_length_buf.tolist() == [0, 0]
    mean_return, mean_length, count = dev.episode_stats()
    assert count == 2 and mean_length == 3.0 and np.isfinite(mean_return)
    assert dev.episode_stats()[2] == 0  # drained
    dev.close()


def test_device_task_refuses_what_it_does_not_run() -> None:
    with pytest.raises(UserError, match="velocity ids only"):
        make_device_velocity_env("robolearn/G1Tracking-v1", 2, device="cpu")
    with pytest.raises(UserError, match=r"gait_period_s=0\.5"):
        make_device_velocity_env("robolearn/Go2Velocity-v1", 2, device="cpu", gait_period_s=0.5)


def test_device_task_snapshot_continues_exactly(tmp_path: Path) -> None:
    dr = {
        **DR,
        "obs_noise": 1.0,
        "push_interval_s": [0.04, 0.08],
        "push_velocity": 0.5,
        "action_delay": [0, 2],
    }
    env = make_device_velocity_env("robolearn/Go2Velocity-v1", 2, seed=3, device="cpu", randomization=dr)
    env.get_observations()
    actions = torch.rand((6, 2, env.num_actions), generator=torch.Generator().manual_seed(0)) - 0.5
    for a in actions[:2]:
        env.step(a)
    # Through a file as a checkpoint would carry it (torch.load's default weights_only=True).
    path = tmp_path / "env.pt"
    torch.save(env.get_state(), path)
    snapshot = torch.load(path)

    def rollout() -> list[torch.Tensor]:
        out = []
        for a in actions[2:]:
            obs, reward, done, _ = env.step(a)
            out += [obs["policy"].clone(), reward.clone(), done.clone()]
        return out

    first = rollout()
    env.set_state(snapshot)
    assert torch.equal(env.get_observations()["policy"], snapshot["obs"])
    second = rollout()
    for x, y in zip(first, second, strict=True):
        assert torch.equal(x, y)
    env.close()


def test_rsl_rl_ppo_drives_the_device_task() -> None:
    pytest.importorskip("rsl_rl", reason="agent=rsl_ppo needs the rsl extra")
    from rsl_rl.algorithms import PPO
    from rsl_rl.models import MLPModel
    from rsl_rl.storage import RolloutStorage

    torch.manual_seed(0)
    n, horizon = 2, 4
    env = make_device_velocity_env("robolearn/Go2Velocity-v1", n, seed=0, device="cpu", max_episode_steps=3)
    obs = env.get_observations()
    groups = {"actor": ["policy"], "critic": ["policy"]}
    gaussian = {"class_name": "rsl_rl.modules.distribution:GaussianDistribution", "init_std": 1.0}
    actor = MLPModel(obs, groups, "actor", env.num_actions, hidden_dims=[16], distribution_cfg=gaussian)
    critic = MLPModel(obs, groups, "critic", 1, hidden_dims=[16])
    storage = RolloutStorage("rl", n, horizon, obs, [env.num_actions], "cpu")
    alg = PPO(actor, critic, storage, num_learning_epochs=1, num_mini_batches=1)
    # rsl_rl's runner starts episodes at random lengths by assigning the buffer (outside inference mode).
    env.episode_length_buf = torch.randint_like(env.episode_length_buf, high=env.max_episode_length)
    # As robolearn/runs/rsl_trainer.py: the rollout under inference mode, the update outside it.
    with torch.inference_mode():
        for _ in range(horizon):
            actions = alg.act(obs)
            obs, rewards, dones, extras = env.step(actions)
            assert rewards.shape == (n,) and dones.dtype == torch.bool and obs["policy"].shape == (n, 45)
            alg.process_env_step(obs, rewards, dones, extras)
        alg.compute_returns(obs)
    losses = alg.update()
    assert np.isfinite(losses["value"]) and np.isfinite(losses["surrogate"])
    # Stepping on outside inference mode must work on the state written inside it.
    env.step(torch.zeros(n, env.num_actions))
    assert env.episode_stats()[2] >= n  # every env hit the 3-step limit at least once
    env.get_state()
    env.close()
