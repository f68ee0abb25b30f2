"""Rough terrain for legged robots: a grid of sub-terrain tiles as one MuJoCo heightfield.

The layout follows legged_gym's terrain curriculum (legged_gym/utils/terrain.py, its `Terrain` class
and `LeggedRobotCfg.terrain`): a grid of `levels` x `types` square tiles, each `tile_size` metres a
side, surrounded by a flat border. Row i (along world x) is difficulty i / (levels - 1) from 0 to 1,
column j (along world y) is one kind of terrain, picked by `proportions` the way legged_gym spreads its
columns over its five kinds. Every height is a multiple of `vertical_scale`, on a grid of
`horizontal_scale` metres, as legged_gym's int16 height samples are. The values below are legged_gym's
unless marked "ours":

| kind         | at difficulty d                                                                    |
|--------------|------------------------------------------------------------------------------------|
| flat         | 0                                                                                  |
| slope_up     | a pyramid rising at grade 0.4 d from the tile's edge to a flat central platform     |
| slope_down   | the same, falling (a pit)                                                          |
| rough_slope  | slope_up, or slope_down on odd tiles, plus uniform noise of +-0.05 m on a 0.2 m grid |
| stairs_up    | concentric steps 0.31 m wide and 0.05 + 0.18 d high up to the platform             |
| stairs_down  | the same, down to the platform                                                     |
| obstacles    | 20 boxes of 1-2 m a side, +-(0.05 + 0.2 d) m or half that high, platform left clear |

Ours: each pyramid and staircase starts at height 0 on the tile's edge (legged_gym's first step is
already one step high), so neighbouring tiles meet at 0; the platform is `platform_size` (3 m) square.

Heights are indexed `heights[iy, ix]` (MuJoCo's heightfield rows run along y), sample (iy, ix) is at
world (ix, iy) x horizontal_scale, and `height_at` interpolates on the triangles MuJoCo collides with,
so a lookup agrees with a ray cast on the compiled model. `origins[level, type]` is where a robot
starts on that tile: its centre, at the highest point of the central 2 m square (legged_gym's rule).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robolearn.errors import UserError, close_matches

KINDS = ("flat", "slope_up", "slope_down", "rough_slope", "stairs_up", "stairs_down", "obstacles")
# legged_gym's terrain_proportions [0.1, 0.1, 0.35, 0.25, 0.2] over smooth slope (half up, half down),
# rough slope, stairs up, stairs down and discrete obstacles.
DEFAULT_PROPORTIONS = {
    "slope_up": 0.05,
    "slope_down": 0.05,
    "rough_slope": 0.1,
    "stairs_up": 0.35,
    "stairs_down": 0.25,
    "obstacles": 0.2,
}
MAX_GRADE = 0.4  # slope = 0.4 d
ROUGH_NOISE = 0.05  # m, uniform in [-0.05, 0.05]
ROUGH_GRID = 0.2  # m, the noise's own grid, interpolated onto the heightfield's
STEP_WIDTH = 0.31  # m
STEP_HEIGHT = (0.05, 0.18)  # m: 0.05 + 0.18 d
OBSTACLE_HEIGHT = (0.05, 0.2)  # m: 0.05 + 0.2 d
OBSTACLE_COUNT = 20
OBSTACLE_SIZE = (1.0, 2.0)  # m, each side
ORIGIN_SQUARE = 2.0  # m: a start stands on the highest point of the tile's central square this wide


@dataclass(frozen=True)
class TerrainConfig:
    """A terrain grid; `from_kwargs` validates a config mapping in one-line errors."""

    levels: int = 10  # rows of difficulty 0..1 ([lg] num_rows)
    types: int = 20  # columns ([lg] num_cols)
    tile_size: float = 8.0  # m ([lg] terrain_length = terrain_width)
    border: float = 5.0  # m of flat ground around the grid (ours; [lg] border_size 25)
    horizontal_scale: float = 0.1  # m ([lg])
    vertical_scale: float = 0.005  # m ([lg])
    platform_size: float = 3.0  # m ([lg] platform_size)
    proportions: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PROPORTIONS))
    seed: int = 0

    @classmethod
    def from_kwargs(cls, cfg: Mapping[str, Any] | None) -> TerrainConfig:
        """Parse and check a `terrain:` mapping (unknown keys and bad values are one line each)."""
        cfg = dict(cfg or {})
        names = [f.name for f in fields(cls)]
        for key in cfg:
            if key not in names:
                raise UserError(
                    f"terrain.{key} is not a terrain option{close_matches(str(key), names)}; use "
                    f"{', '.join(names)}, curriculum or max_init_level"
                )
        out = cls(**cfg)
        for key in ("levels", "types"):
            value = getattr(out, key)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise UserError(f"terrain.{key}={value!r} must be a whole number of tiles >= 1, e.g. 10")
        for key in ("tile_size", "horizontal_scale", "vertical_scale", "platform_size"):
            value = getattr(out, key)
            if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
                raise UserError(f"terrain.{key}={value!r} must be a positive length in metres")
        if not isinstance(out.border, int | float) or out.border < 0:
            raise UserError(f"terrain.border={out.border!r} must be a length >= 0 in metres, e.g. 5")
        if out.tile_size / out.horizontal_scale < 4:
            raise UserError(
                f"terrain.tile_size={out.tile_size} is under 4 samples of horizontal_scale={out.horizontal_scale};"
                " use a larger tile or a finer scale"
            )
        if out.platform_size >= out.tile_size:
            raise UserError(
                f"terrain.platform_size={out.platform_size} must be smaller than tile_size={out.tile_size}"
            )
        if not isinstance(out.proportions, Mapping) or not out.proportions:
            raise UserError(
                f"terrain.proportions={out.proportions!r} must map kinds to shares, e.g. {{stairs_up: 1}}"
            )
        for kind, share in out.proportions.items():
            if kind not in KINDS:
                raise UserError(
                    f"terrain.proportions has an unknown kind {kind!r}{close_matches(str(kind), KINDS)}; "
                    f"use {', '.join(KINDS)}"
                )
            if not isinstance(share, int | float) or isinstance(share, bool) or share < 0:
                raise UserError(f"terrain.proportions.{kind}={share!r} must be a share >= 0")
        if sum(float(v) for v in out.proportions.values()) <= 0:
            raise UserError("terrain.proportions must have a positive share for at least one kind")
        return out

    def column_kinds(self) -> tuple[str, ...]:
        """The kind of each column: the columns split over the kinds in proportion (legged_gym's
        choice = j / types + 0.001 against the cumulative shares)."""
        kinds = [k for k in KINDS if float(self.proportions.get(k, 0.0)) > 0]
        shares = np.array([float(self.proportions[k]) for k in kinds])
        edges = np.cumsum(shares / shares.sum())
        picks = [int(np.searchsorted(edges, j / self.types + 0.001)) for j in range(self.types)]
        return tuple(kinds[min(p, len(kinds) - 1)] for p in picks)

    def difficulties(self) -> np.ndarray:
        """Each level's difficulty in [0, 1] (level 0 is 0; the last is 1)."""
        return np.linspace(0.0, 1.0, self.levels) if self.levels > 1 else np.zeros(1)


def step_height(difficulty: float) -> float:
    """Stair step height (m) at a difficulty."""
    return STEP_HEIGHT[0] + STEP_HEIGHT[1] * difficulty


def obstacle_height(difficulty: float) -> float:
    """Tallest obstacle (m) at a difficulty."""
    return OBSTACLE_HEIGHT[0] + OBSTACLE_HEIGHT[1] * difficulty


def _edge_distance(n: int, scale: float) -> np.ndarray:
    """(n, n) distance (m) of each sample to the nearest edge of its tile."""
    i = np.arange(n)
    d = np.minimum(i, n - 1 - i) * scale
    return np.minimum(d[:, None], d[None, :])


def _pyramid(n: int, scale: float, rise: float, platform: float) -> np.ndarray:
    """Height rising by `rise` per metre from the edge, flat from the platform's edge inward."""
    edge = _edge_distance(n, scale)
    flat_from = ((n - 1) * scale - platform) / 2
    return rise * np.minimum(edge, flat_from)


def _stairs(n: int, scale: float, height: float, platform: float) -> np.ndarray:
    """Concentric steps STEP_WIDTH wide, each `height` above the last, up to the platform."""
    edge = _edge_distance(n, scale)
    flat_from = ((n - 1) * scale - platform) / 2
    return height * np.floor(np.minimum(edge, flat_from) / STEP_WIDTH + 1e-9)


def _rough(n: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Uniform noise on a ROUGH_GRID grid in [-ROUGH_NOISE, ROUGH_NOISE], bilinear onto the samples."""
    extent = (n - 1) * scale
    coarse_n = max(int(np.ceil(extent / ROUGH_GRID)) + 1, 2)
    coarse = rng.uniform(-ROUGH_NOISE, ROUGH_NOISE, size=(coarse_n, coarse_n))
    at = np.arange(n) * scale / ROUGH_GRID
    i0 = np.minimum(np.floor(at).astype(np.int64), coarse_n - 2)
    f = at - i0
    rows = coarse[i0] * (1 - f)[:, None] + coarse[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


def _obstacles(n: int, scale: float, height: float, platform: float, rng: np.random.Generator) -> np.ndarray:
    """OBSTACLE_COUNT boxes at random places, sizes and heights, the central platform cleared."""
    out = np.zeros((n, n))
    levels = np.array([-height, -height / 2, height / 2, height])
    for _ in range(OBSTACLE_COUNT):
        w, h = (rng.uniform(*OBSTACLE_SIZE, size=2) / scale).astype(np.int64)
        x0, y0 = rng.integers(0, max(n - w, 1)), rng.integers(0, max(n - h, 1))
        out[y0 : y0 + h, x0 : x0 + w] = rng.choice(levels)
    centre, half = (n - 1) / 2, platform / scale / 2
    i = np.arange(n)
    inside = np.abs(i - centre) <= half
    out[np.ix_(inside, inside)] = 0.0
    return out


def tile_heights(
    kind: str, difficulty: float, n: int, cfg: TerrainConfig, rng: np.random.Generator
) -> np.ndarray:
    """One tile's (n, n) heights (m, before quantisation) for a kind and a difficulty in [0, 1]."""
    s, p = cfg.horizontal_scale, cfg.platform_size
    if kind == "flat":
        return np.zeros((n, n))
    if kind in ("slope_up", "slope_down", "rough_slope"):
        sign = -1.0 if kind == "slope_down" or (kind == "rough_slope" and rng.random() < 0.5) else 1.0
        out = _pyramid(n, s, sign * MAX_GRADE * difficulty, p)
        return out + _rough(n, s, rng) if kind == "rough_slope" else out
    if kind in ("stairs_up", "stairs_down"):
        return _stairs(n, s, (1.0 if kind == "stairs_up" else -1.0) * step_height(difficulty), p)
    if kind == "obstacles":
        return _obstacles(n, s, obstacle_height(difficulty), p, rng)
    raise UserError(f"unknown terrain kind {kind!r}{close_matches(kind, KINDS)}; use {', '.join(KINDS)}")


@dataclass(frozen=True)
class Terrain:
    """A generated terrain: heights on the grid, each tile's kind, difficulty and start origin."""

    config: TerrainConfig
    heights: np.ndarray  # (ny, nx) m, heights[iy, ix] at world (ix, iy) * horizontal_scale
    kinds: tuple[str, ...]  # per column (type)
    difficulty: np.ndarray  # per row (level)
    origins: np.ndarray  # (levels, types, 3) world start points

    @property
    def tile_samples(self) -> int:
        """Samples along a tile's side."""
        return round(self.config.tile_size / self.config.horizontal_scale)

    @property
    def border_samples(self) -> int:
        """Samples of flat border on each side."""
        return round(self.config.border / self.config.horizontal_scale)

    @property
    def size(self) -> tuple[float, float]:
        """World extent (m) along x and y (from 0)."""
        ny, nx = self.heights.shape
        return (nx - 1) * self.config.horizontal_scale, (ny - 1) * self.config.horizontal_scale

    def height_at(self, xy: np.ndarray) -> np.ndarray:
        """Ground height (m) under world points xy (..., 2), on MuJoCo's heightfield triangles;
        points off the grid read its nearest edge."""
        xy = np.asarray(xy, dtype=np.float64)
        ny, nx = self.heights.shape
        gx = np.clip(xy[..., 0] / self.config.horizontal_scale, 0.0, nx - 1)
        gy = np.clip(xy[..., 1] / self.config.horizontal_scale, 0.0, ny - 1)
        ix = np.minimum(np.floor(gx).astype(np.int64), nx - 2)
        iy = np.minimum(np.floor(gy).astype(np.int64), ny - 2)
        u, v = gx - ix, gy - iy
        h = self.heights
        h00, h10, h01, h11 = h[iy, ix], h[iy, ix + 1], h[iy + 1, ix], h[iy + 1, ix + 1]
        # MuJoCo splits each cell along its (0,0)-(1,1) diagonal.
        lower = h00 + u * (h10 - h00) + v * (h11 - h10)
        upper = h00 + v * (h01 - h00) + u * (h11 - h01)
        return np.where(u >= v, lower, upper)

    def tile_of(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(level, type) of the tile under world points xy (..., 2), clipped to the grid."""
        xy = np.asarray(xy, dtype=np.float64)
        c = self.config
        local = xy / c.horizontal_scale - self.border_samples
        level = np.clip(np.floor(local[..., 0] / self.tile_samples), 0, c.levels - 1).astype(np.int64)
        kind = np.clip(np.floor(local[..., 1] / self.tile_samples), 0, c.types - 1).astype(np.int64)
        return level, kind

    def add_to_spec(
        self, spec: mujoco.MjSpec, replace_geom: str | None = "floor", name: str = "terrain"
    ) -> None:
        """Add the terrain to a model spec as a heightfield geom in the world body; the geom named
        `replace_geom` (the scene's flat floor) is removed and its friction and material kept."""
        friction, material = None, ""
        if replace_geom is not None:
            old = spec.geom(replace_geom)
            if old is None:
                raise UserError(
                    f"the model has no geom {replace_geom!r} to replace with the terrain; name the floor geom"
                )
            friction, material = np.array(old.friction), old.material
            spec.delete(old)
        lo, hi = float(self.heights.min()), float(self.heights.max())
        span = max(hi - lo, self.config.vertical_scale)
        ny, nx = self.heights.shape
        rx, ry = self.size[0] / 2, self.size[1] / 2
        spec.add_hfield(
            name=name,
            size=[rx, ry, span, 0.5],
            nrow=ny,
            ncol=nx,
            userdata=((self.heights - lo) / span).ravel().tolist(),
        )
        geom = spec.worldbody.add_geom(
            name=name, type=mujoco.mjtGeom.mjGEOM_HFIELD, hfieldname=name, pos=[rx, ry, lo]
        )
        if friction is not None:
            geom.friction = friction
        if material:
            geom.material = material


def generate_terrain(cfg: TerrainConfig) -> Terrain:
    """Build the terrain grid of `cfg` (deterministic in cfg.seed)."""
    rng = np.random.default_rng(cfg.seed)
    n = round(cfg.tile_size / cfg.horizontal_scale)
    b = round(cfg.border / cfg.horizontal_scale)
    kinds = cfg.column_kinds()
    difficulty = cfg.difficulties()
    heights = np.zeros((2 * b + cfg.types * n, 2 * b + cfg.levels * n))
    origins = np.zeros((cfg.levels, cfg.types, 3))
    half = max(round(ORIGIN_SQUARE / cfg.horizontal_scale / 2), 1)
    for i in range(cfg.levels):
        for j, kind in enumerate(kinds):
            tile = tile_heights(kind, float(difficulty[i]), n, cfg, rng)
            tile = np.round(tile / cfg.vertical_scale) * cfg.vertical_scale
            y0, x0 = b + j * n, b + i * n
            heights[y0 : y0 + n, x0 : x0 + n] = tile
            c = (n - 1) / 2
            centre = tile[round(c - half) : round(c + half) + 1, round(c - half) : round(c + half) + 1]
            origins[i, j] = ((x0 + c) * cfg.horizontal_scale, (y0 + c) * cfg.horizontal_scale, centre.max())
    return Terrain(config=cfg, heights=heights, kinds=kinds, difficulty=difficulty, origins=origins)


def model_with_terrain(path: str | Path, terrain: Terrain) -> mujoco.MjModel:
    """Compile the MJCF scene at `path` with its `floor` geom replaced by the terrain."""
    spec = mujoco.MjSpec.from_file(str(path))
    terrain.add_to_spec(spec)
    return spec.compile()


@dataclass(frozen=True)
class TerrainOptions:
    """A task's `terrain:` mapping: the grid (TerrainConfig) and how robots move over it."""

    grid: TerrainConfig
    curriculum: bool = True  # [lg] terrain.curriculum: levels follow the distance walked
    max_init_level: int = 5  # [lg] max_init_terrain_level: training envs start at levels 0..5

    @classmethod
    def from_kwargs(cls, cfg: Mapping[str, Any] | None) -> TerrainOptions | None:
        """None for no terrain (flat floor); a mapping (possibly empty: every default) for terrain."""
        if cfg is None:
            return None
        if not isinstance(cfg, Mapping):
            raise UserError(
                f"terrain={cfg!r} must be a mapping of terrain options (e.g. {{levels: 10}}) or null"
            )
        rest = dict(cfg)
        curriculum = rest.pop("curriculum", True)
        max_init = rest.pop("max_init_level", 5)
        if not isinstance(curriculum, bool):
            raise UserError(f"terrain.curriculum={curriculum!r} must be true or false")
        if isinstance(max_init, bool) or not isinstance(max_init, int | np.integer) or max_init < 0:
            raise UserError(f"terrain.max_init_level={max_init!r} must be a level >= 0, e.g. 5")
        return cls(grid=TerrainConfig.from_kwargs(rest), curriculum=curriculum, max_init_level=int(max_init))
