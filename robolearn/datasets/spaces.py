"""Gymnasium spaces to and from minari's JSON form (minari/serialization.py, minari 0.5), without minari.

Only the spaces our datasets use: Box, Discrete and Dict of those. The JSON is minari's, so a dataset we
write opens with `minari.MinariDataset` and one minari wrote opens here.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from gymnasium import spaces

from robolearn.errors import UserError


def space_to_dict(space: spaces.Space) -> dict[str, Any]:
    """Minari's JSON object for a Box, Discrete or Dict space."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "dtype": str(space.dtype),
            "shape": list(space.shape),
            "low": space.low.tolist(),
            "high": space.high.tolist(),
        }
    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "dtype": "int64", "start": int(space.start), "n": int(space.n)}
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "subspaces": {k: space_to_dict(s) for k, s in space.spaces.items()}}
    raise UserError(
        f"datasets hold Box, Discrete or Dict spaces; got {type(space).__name__} ({space}): flatten it first"
    )


def serialize_space(space: spaces.Space) -> str:
    """The string minari stores in metadata.json for a space."""
    return json.dumps(space_to_dict(space))


def space_from_dict(d: dict[str, Any]) -> spaces.Space:
    """The gymnasium space of minari's JSON object."""
    kind = d.get("type")
    if kind == "Box":
        dtype = np.dtype(d["dtype"])
        low = np.asarray(d["low"], dtype=dtype)
        high = np.asarray(d["high"], dtype=dtype)
        return spaces.Box(low=low, high=high, shape=tuple(d["shape"]), dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    if kind == "Dict":
        return spaces.Dict({k: space_from_dict(v) for k, v in d["subspaces"].items()})
    raise UserError(f"space type {kind!r} is not supported here (Box, Discrete, Dict)")


def deserialize_space(text: str) -> spaces.Space:
    """The gymnasium space of a metadata.json space string."""
    return space_from_dict(json.loads(text))


def describe(space: spaces.Space) -> str:
    """A short one-line description: Box(float32, (11,)), Dict(pixels: Box(uint8, (64, 64, 3)), ...)."""
    if isinstance(space, spaces.Box):
        return f"Box({space.dtype}, {tuple(space.shape)})"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {describe(s)}" for k, s in space.spaces.items()) + ")"
    return str(space)


def spaces_match(data: spaces.Space, env: spaces.Space) -> bool:
    """Whether data of `data` fits `env`: same kind, keys, shapes and dtype kind (bounds may differ)."""
    if isinstance(data, spaces.Dict) and isinstance(env, spaces.Dict):
        return set(data.spaces) == set(env.spaces) and all(
            spaces_match(data.spaces[k], env.spaces[k]) for k in data.spaces
        )
    if isinstance(data, spaces.Box) and isinstance(env, spaces.Box):
        return data.shape == env.shape and np.dtype(data.dtype).kind == np.dtype(env.dtype).kind
    if isinstance(data, spaces.Discrete) and isinstance(env, spaces.Discrete):
        return data.n == env.n and data.start == env.start
    return False
