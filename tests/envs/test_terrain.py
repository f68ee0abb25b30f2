"""The terrain generator: stated heights per kind and difficulty, the compiled heightfield, errors."""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np
import pytest

from robolearn.envs.terrain import (
    KINDS,
    MAX_GRADE,
    ROUGH_NOISE,
    STEP_WIDTH,
    TerrainConfig,
    generate_terrain,
    obstacle_height,
    step_height,
)
from robolearn.errors import UserError

SMALL = {"levels": 3, "types": len(KINDS), "tile_size": 4.0, "border": 1.0, "platform_size": 1.0}


def _terrain(**over: Any) -> Any:
    cfg = {**SMALL, "proportions": {k: 1.0 for k in KINDS}, **over}
    return generate_terrain(TerrainConfig.from_kwargs(cfg))


def _tile(t: Any, level: int, kind: str) -> np.ndarray:
    n, b = t.tile_samples, t.border_samples
    j = t.kinds.index(kind)
    return t.heights[b + j * n : b + (j + 1) * n, b + level * n : b + (level + 1) * n]


def test_every_kind_gets_a_column_and_heights_are_on_the_vertical_grid() -> None:
    t = _terrain()
    assert t.kinds == KINDS
    assert t.heights.shape == (2 * 10 + 7 * 40, 2 * 10 + 3 * 40)
    np.testing.assert_allclose(t.difficulty, [0.0, 0.5, 1.0])
    q = t.heights / 0.005
    np.testing.assert_allclose(q, np.round(q), atol=1e-9)
    b = t.border_samples
    assert not t.heights[:b].any() and not t.heights[:, :b].any()  # the border is flat
    assert not _tile(t, 2, "flat").any()


def test_default_columns_follow_legged_gyms_proportions() -> None:
    kinds = TerrainConfig().column_kinds()
    counts = {k: kinds.count(k) for k in set(kinds)}
    # [lg] terrain_proportions over 20 columns: 0.1 smooth slope (half each way), 0.1 rough slope,
    # 0.35 stairs up, 0.25 stairs down, 0.2 obstacles.
    assert counts == {
        "slope_up": 1,
        "slope_down": 1,
        "rough_slope": 2,
        "stairs_up": 7,
        "stairs_down": 5,
        "obstacles": 4,
    }


@pytest.mark.parametrize("level", [0, 1, 2])
def test_stairs_rise_by_the_stated_step_every_step_width(level: int) -> None:
    t = _terrain()
    d = t.difficulty[level]
    for kind, sign in (("stairs_up", 1.0), ("stairs_down", -1.0)):
        row = _tile(t, level, kind)[20]  # through the tile's middle, along x
        assert row[0] == 0.0  # the outer ring meets the neighbouring tile at 0
        jumps = np.diff(row[:20])
        rises = jumps[np.abs(jumps) > 1e-9]
        np.testing.assert_allclose(rises, sign * round(step_height(d) / 0.005) * 0.005, atol=1e-9)
        # Steps every STEP_WIDTH: the first rise comes after 0.31 m (the 4th sample past 0.3 m).
        first = int(np.flatnonzero(np.abs(jumps) > 1e-9)[0]) + 1
        assert first * 0.1 == pytest.approx(np.ceil(STEP_WIDTH / 0.1) * 0.1)
        # Flat from the platform's edge: (3.9 - 1) / 2 = 1.45 m from the edge, 4 steps of 0.31 m.
        assert row[19] == row[20] == pytest.approx(sign * 4 * round(step_height(d) / 0.005) * 0.005)


@pytest.mark.parametrize("level", [1, 2])
def test_slopes_rise_at_the_stated_grade_and_rough_ones_stay_within_the_noise(level: int) -> None:
    t = _terrain()
    d = t.difficulty[level]
    up, down = _tile(t, level, "slope_up")[20], _tile(t, level, "slope_down")[20]
    grade = np.polyfit(np.arange(14) * 0.1, up[:14], 1)[0]
    assert grade == pytest.approx(MAX_GRADE * d, abs=0.01)
    np.testing.assert_allclose(down, -up, atol=0.005 + 1e-9)
    assert up[20] == pytest.approx(MAX_GRADE * d * 1.45, abs=0.005)
    rough = _tile(t, level, "rough_slope")
    smooth = np.abs(_tile(t, level, "slope_up"))
    # A rough tile is a pyramid up or down (one or the other) plus at most ROUGH_NOISE of noise.
    err = np.minimum(np.abs(rough - smooth), np.abs(rough + smooth)).max()
    assert 0.02 < err <= ROUGH_NOISE + 0.005


def test_obstacles_take_the_stated_heights_and_leave_the_platform_clear() -> None:
    t = _terrain()
    for level in range(3):
        tile = _tile(t, level, "obstacles")
        h = obstacle_height(t.difficulty[level])
        allowed = np.round(np.array([0.0, h / 2, -h / 2, h, -h]) / 0.005) * 0.005
        assert np.isin(np.round(tile, 9), np.round(allowed, 9)).all()
        assert len(np.unique(tile)) >= 3
        assert not tile[15:25, 15:25].any()  # the central 1 m platform


def test_origins_stand_on_their_tiles_at_the_top_of_the_central_square() -> None:
    t = _terrain()
    level, kind = t.tile_of(t.origins[..., :2])
    np.testing.assert_array_equal(level, np.arange(3)[:, None].repeat(7, 1))
    np.testing.assert_array_equal(kind, np.arange(7)[None, :].repeat(3, 0))
    # On the up staircase the origin is the platform's height; in the pit the rim of the 2 m square.
    assert t.origins[2, t.kinds.index("stairs_up"), 2] == pytest.approx(t.height_at(t.origins[2, 4, :2]))
    pit = t.origins[2, t.kinds.index("stairs_down")]
    assert pit[2] > t.height_at(pit[:2])


def test_the_compiled_heightfield_is_the_generated_one() -> None:
    t = _terrain()
    spec = mujoco.MjSpec()
    floor = spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 1])
    floor.friction = [0.7, 0.01, 0.001]
    ball = spec.worldbody.add_body(name="ball", pos=[0, 0, 3])
    ball.add_freejoint()
    ball.add_geom(type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.05, 0, 0], mass=1.0)
    t.add_to_spec(spec)
    model = spec.compile()
    assert mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor") == -1
    terrain = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "terrain")
    assert model.geom_friction[terrain][0] == pytest.approx(0.7)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    rng = np.random.default_rng(0)
    points = rng.uniform((0.0, 0.0), t.size, size=(200, 2))
    hit = np.array([-1], dtype=np.int32)
    cast = []
    for x, y in points:
        dist = mujoco.mj_ray(model, data, np.array([x, y, 5.0]), np.array([0.0, 0.0, -1.0]), None, 1, 1, hit)
        assert hit[0] == terrain
        cast.append(5.0 - dist)
    np.testing.assert_allclose(cast, t.height_at(points), atol=1e-6)  # float32 heightfield data
    # A ball dropped on the top of the hardest staircase comes to rest on it.
    top = t.origins[2, t.kinds.index("stairs_up")]
    data.qpos[:3] = top[0], top[1], top[2] + 0.3
    for _ in range(600):
        mujoco.mj_step(model, data)
    assert data.qpos[2] == pytest.approx(top[2] + 0.05, abs=0.005)


def test_the_same_seed_gives_the_same_terrain() -> None:
    a, b, c = _terrain(seed=1), _terrain(seed=1), _terrain(seed=2)
    np.testing.assert_array_equal(a.heights, b.heights)
    assert not np.array_equal(a.heights, c.heights)


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"level": 3}, "terrain.level is not a terrain option (did you mean levels?)"),
        ({"levels": 0}, "terrain.levels=0 must be a whole number"),
        ({"tile_size": -1.0}, "terrain.tile_size=-1.0 must be a positive length"),
        ({"platform_size": 5.0}, "terrain.platform_size=5.0 must be smaller than tile_size=4.0"),
        ({"horizontal_scale": 2.0}, "is under 4 samples"),
        ({"proportions": {"stair_up": 1.0}}, "unknown kind 'stair_up' (did you mean stairs_up"),
        ({"proportions": {"flat": -1.0}}, "terrain.proportions.flat=-1.0 must be a share >= 0"),
        ({"proportions": {"flat": 0.0}}, "must have a positive share"),
        ({"border": -1.0}, "terrain.border=-1.0 must be a length >= 0"),
    ],
)
def test_bad_terrain_options_are_one_line(over: dict[str, Any], needle: str) -> None:
    with pytest.raises(UserError) as err:
        TerrainConfig.from_kwargs({**SMALL, **over})
    assert needle in str(err.value) and "\n" not in str(err.value)
