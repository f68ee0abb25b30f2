"""The velocity task on terrain: standing on every kind of tile, heights above the ground, the curriculum."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from robolearn.envs.factory import register_envs
from robolearn.envs.tasks.velocity import TERRAIN_SPAWN_OFFSET, VelocityTask
from robolearn.envs.vector import make_batched_vector_env
from robolearn.errors import UserError

register_envs()
KINDS4 = {"stairs_up": 1.0, "stairs_down": 1.0, "rough_slope": 1.0, "obstacles": 1.0}
GRID = {"levels": 4, "types": 4, "tile_size": 4.0, "border": 2.0, "platform_size": 1.5, "proportions": KINDS4}


def _task(env: Any) -> VelocityTask:
    task = env.unwrapped
    assert isinstance(task, VelocityTask)
    return task


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_go2_stands_on_its_tile_with_heights_read_above_the_ground(seed: int) -> None:
    env = gym.make("robolearn/Go2Velocity-v1", terrain=GRID, randomization={"obs_noise": 0.0})
    task = _task(env)
    env.reset(seed=seed)
    level, kind = int(task.terrain_level[0]), int(task.terrain_type[0])
    origin = task.terrain.origins[level, kind]
    start = task.backend.frame().root_pos[0]
    assert np.all(np.abs(start[:2] - origin[:2]) <= TERRAIN_SPAWN_OFFSET)
    for _ in range(50):  # 1 s of zero actions: the default pose stands
        _, _, terminated, _, _ = env.step(np.zeros(12, dtype=np.float32))
        assert not terminated
    frame = task.backend.frame()
    ground = task.terrain.height_at(
        np.concatenate((frame.root_pos[:, None, :2], frame.body_pos[:, :, :2]), 1)
    )
    assert ground[0, 0] > 0.05 or ground[0, 0] < -0.05 or task.terrain.kinds[kind] == "obstacles"
    # Base and feet heights are measured from the ground under them: a standing Go2's on any tile.
    assert frame.root_pos[0, 2] - ground[0, 0] == pytest.approx(0.30, abs=0.03)
    np.testing.assert_allclose(frame.body_pos[0, :, 2] - ground[0, 1:], 0.022, atol=0.004)
    ctx = task.reward_context(frame, np.zeros((1, 12)), np.zeros((1, 12)), np.zeros(1, dtype=bool))
    assert ctx.foot_contact.all()
    assert ctx.base_height[0] == pytest.approx(frame.root_pos[0, 2] - ground[0, 0])
    env.close()


def test_a_robot_below_the_minimum_height_above_its_ground_has_fallen() -> None:
    env = gym.make("robolearn/Go2Velocity-v1", terrain=GRID)
    task = _task(env)
    env.reset(seed=0)
    frame = task.backend.frame()
    assert not task.fallen(frame)[0]
    # The same world height over a ground raised to 0.05 m under the base: a fall.
    above = frame.root_pos[0, 2] - task.terrain.height_at(frame.root_pos[0, :2])
    assert above > 0.25
    task.terrain.heights[:] += above - 0.05
    task._ground_cache.frame = None
    assert task.fallen(frame)[0]
    env.close()


def test_the_terrain_curriculum_moves_walkers_up_and_laggards_down() -> None:
    env = make_batched_vector_env("robolearn/Go2Velocity-v1", num_envs=8, terrain=GRID)
    env.reset(seed=0)
    task = env.task if hasattr(env, "task") else env.unwrapped
    assert isinstance(task, VelocityTask)
    # [lg] columns in order, levels 0..max_init_level in turn (here capped at the last level, 3).
    np.testing.assert_array_equal(task.terrain_type, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(task.terrain_level, [0, 1, 2, 3, 0, 1, 2, 3])
    origin = task.terrain.origins[task.terrain_level, task.terrain_type, :2]
    task.last_root_xy = origin.copy()
    task.last_root_xy[[0, 1, 3]] += [2.1, 0.0]  # walked more than half of a 4 m tile
    task.command[:] = 0.0
    task.command[[4, 5], 0] = 0.5  # asked for 0.5 m/s over 20 s and stayed at the origin: down
    task.command[6, 0] = 0.1  # asked for 2 m, half is 1 m; walked 1.5 m: stays
    task.last_root_xy[6] += [1.5, 0.0]
    before = task.terrain_level.copy()
    task.episode_step[:] = 10
    task.reset_envs(np.arange(8))
    after = task.terrain_level
    assert after[0] == before[0] + 1 and after[1] == before[1] + 1
    assert 0 <= after[3] < 4  # solved the last level: sent to a random one
    assert after[4] == 0 and after[5] == before[5] - 1  # down, never below 0
    assert after[2] == before[2] and after[6] == before[6] and after[7] == before[7]
    # The next episodes start on their new tiles.
    start = task.backend.frame().root_pos[:, :2]
    new_origin = task.terrain.origins[after, task.terrain_type, :2]
    assert np.all(np.abs(start - new_origin) <= TERRAIN_SPAWN_OFFSET + 1e-9)
    env.close()


def test_terrain_options_fail_in_one_line() -> None:
    for terrain, needle in (
        ({"curriculum": "yes"}, "terrain.curriculum='yes' must be true or false"),
        ({"max_init_level": -1}, "terrain.max_init_level=-1 must be a level >= 0"),
        ({"levls": 3}, "terrain.levls is not a terrain option (did you mean levels?)"),
        ("stairs", "terrain='stairs' must be a mapping"),
    ):
        with pytest.raises(UserError) as err:
            gym.make("robolearn/Go2Velocity-v1", terrain=terrain)
        assert needle in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UserError, match="terrain with backend=warp is not supported yet"):
        VelocityTask(robot="go2", num_envs=2, backend="warp", terrain=GRID)


def test_the_critic_height_scan_reads_the_ground_around_the_base_in_its_heading() -> None:
    from robolearn.envs.tasks.velocity import HEIGHT_SCAN_POINTS

    env = make_batched_vector_env(
        "robolearn/Go2Velocity-v1",
        num_envs=4,
        terrain=GRID,
        critic_observes_base_lin_vel=True,
        critic_observes_height_scan=True,
    )
    env.reset(seed=0)
    task = env.task if hasattr(env, "task") else env.unwrapped
    assert task.privileged_size == 3 + 187 == 3 + len(HEIGHT_SCAN_POINTS)
    frame = task.backend.frame()
    ids = np.arange(4)
    scan = task.privileged_observation(frame, ids)[:, 3:]
    yaw = np.array(
        [
            np.arctan2(2 * (q[0] * q[3] + q[1] * q[2]), 1 - 2 * (q[2] ** 2 + q[3] ** 2))
            for q in frame.root_quat
        ]
    )
    for i in range(4):
        c, s = np.cos(yaw[i]), np.sin(yaw[i])
        world = HEIGHT_SCAN_POINTS @ np.array([[c, s], [-s, c]]) + frame.root_pos[i, :2]
        expected = np.clip(frame.root_pos[i, 2] - 0.5 - task.terrain.height_at(world), -1, 1) * 5.0
        np.testing.assert_allclose(scan[i], expected, atol=1e-9)
    # Envs 2 and 3 stand on a rough slope (level 2) and among obstacles (level 3): the scan sees them.
    assert np.ptp(scan[2]) > 0.5 and np.ptp(scan[3]) > 0.5
    env.close()
    with pytest.raises(UserError, match="critic_observes_height_scan=true needs terrain"):
        gym.make("robolearn/Go2Velocity-v1", critic_observes_height_scan=True)
