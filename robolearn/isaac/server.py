"""Out-of-process task server: steps a vectorised task for robolearn's client (robolearn/isaac/client.py).

Run by the client as `<python> <path>/server.py --fd N --factory F --task T --num-envs K [--seed S]
[--options JSON]`, in an interpreter that need not have robolearn installed (Isaac Lab's): this file
imports only the standard library and numpy, plus whatever the factory needs.

Factories:
- `isaaclab`: Isaac Lab's AppLauncher (headless), then `gym.make(task, cfg=parse_env_cfg(task, ...))`;
  torch tensors are moved to numpy here.
- `module:function`: anything importable in this interpreter, called as
  `function(task, num_envs, seed, **options)`; it returns a vectorised env with gymnasium's VectorEnv
  call shapes (reset(seed=) -> (obs, info), step(actions) -> (obs, reward, terminated, truncated, info),
  `single_observation_space`, `single_action_space`, `close()`). robolearn's stand-in is one.

Transport (protocol version PROTOCOL_VERSION):
- Commands and replies: length-prefixed JSON messages (4-byte big-endian length, UTF-8 JSON) on the
  socket whose descriptor the client passed (`--fd`, one end of a socketpair). Not stdin/stdout:
  Isaac Sim prints to stdout, which would corrupt the stream; stdout and stderr stay free for logs.
- Bulk data: one shared-memory block that the CLIENT creates after the handshake and unlinks on
  every exit path (the server only attaches). Layout, all C-contiguous, in this order:
  actions (N, A) f32 | obs (N, O) f32 | final_obs (N, O) f32 | reward (N,) f32 | terminated (N,) u8 |
  truncated (N,) u8. final_obs rows are valid only for envs that finished in the last step.
- Sequence: server -> {"hello", version, num_envs, obs/action space}; client -> {"attach", name};
  then any of {"reset", seed}, {"step"}, {"ping"}, {"close"}; each answered by {"ok": true, ...} or
  {"ok": false, "error": "..."}. EOF on the socket (the client died) ends the server.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import socket
import struct
import sys
import traceback
from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
_HEADER = struct.Struct(">I")


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """Write one length-prefixed JSON message."""
    body = json.dumps(message).encode()
    sock.sendall(_HEADER.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """Read one length-prefixed JSON message; None at EOF."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    body = _recv_exact(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    message: dict[str, Any] = json.loads(body)
    return message


def layout(num_envs: int, obs_dim: int, act_dim: int) -> list[tuple[str, tuple[int, ...], str]]:
    """The shared block's arrays in order: (name, shape, dtype). The client uses the same function."""
    n = num_envs
    return [
        ("actions", (n, act_dim), "float32"),
        ("obs", (n, obs_dim), "float32"),
        ("final_obs", (n, obs_dim), "float32"),
        ("reward", (n,), "float32"),
        ("terminated", (n,), "uint8"),
        ("truncated", (n,), "uint8"),
    ]


def block_size(num_envs: int, obs_dim: int, act_dim: int) -> int:
    """Bytes the shared block needs."""
    return sum(
        int(np.prod(shape)) * np.dtype(dtype).itemsize
        for _, shape, dtype in layout(num_envs, obs_dim, act_dim)
    )


def views(buf: Any, num_envs: int, obs_dim: int, act_dim: int) -> dict[str, np.ndarray]:
    """numpy views of the shared block's arrays."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for name, shape, dtype in layout(num_envs, obs_dim, act_dim):
        arr = np.ndarray(shape, dtype=dtype, buffer=buf, offset=offset)
        out[name] = arr
        offset += arr.nbytes
    return out


def _numpy(value: Any) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _box(space: Any, key: str | None) -> dict[str, Any]:
    if key is not None and hasattr(space, "spaces"):
        if key not in space.spaces:
            raise ValueError(f"observation group {key!r} not in {sorted(space.spaces)}")
        space = space.spaces[key]
    shape = tuple(int(s) for s in space.shape)
    if len(shape) != 1:
        raise ValueError(f"only flat Box spaces travel; got shape {shape}")
    low = np.broadcast_to(np.asarray(space.low, dtype=np.float64), shape)
    high = np.broadcast_to(np.asarray(space.high, dtype=np.float64), shape)
    # JSON has no inf: send None for unbounded entries.
    return {
        "shape": list(shape),
        "low": [None if not np.isfinite(v) else float(v) for v in low],
        "high": [None if not np.isfinite(v) else float(v) for v in high],
    }


class VectorTask:
    """The server's view of a vectorised env: numpy in and out, same-step autoreset, final obs."""

    def __init__(self, env: Any, obs_key: str | None, closers: list[Any]) -> None:
        self.env = env
        self.obs_key = obs_key
        self.closers = closers
        self.num_envs = int(env.num_envs)
        self.obs_space = _box(env.single_observation_space, obs_key)
        self.act_space = _box(env.single_action_space, None)
        self.obs_dim = self.obs_space["shape"][0]
        self.act_dim = self.act_space["shape"][0]
        # Where the env gives actions as torch tensors (Isaac Lab), convert on the env's device.
        self.to_env = lambda a: a
        device = getattr(env, "device", None)
        if device is not None and type(env).__module__.startswith("isaaclab"):
            import torch

            self.to_env = lambda a: torch.as_tensor(a, device=device)

    def _obs(self, obs: Any) -> np.ndarray:
        if isinstance(obs, dict):
            obs = obs[self.obs_key or "policy"]
        return _numpy(obs).reshape(self.num_envs, self.obs_dim)

    def reset(self, seed: int | None, out: dict[str, np.ndarray]) -> None:
        obs, _ = self.env.reset(seed=seed)
        out["obs"][:] = self._obs(obs)

    def step(self, out: dict[str, np.ndarray]) -> int:
        """Step with the actions in the block; write obs, reward, flags, final obs; return envs done."""
        obs, reward, terminated, truncated, info = self.env.step(self.to_env(out["actions"].copy()))
        out["obs"][:] = self._obs(obs)
        out["reward"][:] = _numpy(reward).reshape(self.num_envs)
        term = _numpy(terminated).reshape(self.num_envs).astype(bool)
        trunc = _numpy(truncated).reshape(self.num_envs).astype(bool)
        out["terminated"][:] = term
        out["truncated"][:] = trunc
        done = np.flatnonzero(term | trunc)
        if len(done):
            finals = info.get("final_obs") if isinstance(info, dict) else None
            if isinstance(finals, dict):
                # Isaac Lab versions that keep it: every env's final observation, by group.
                out["final_obs"][done] = self._obs(finals)[done]
            elif finals is not None:
                # gymnasium SAME_STEP autoreset: one row (or None) per env.
                for i in done:
                    out["final_obs"][i] = self._obs_row(finals[i])
            else:
                # Isaac Lab resets inside step() and keeps no final observation: the returned row is the
                # next episode's first (Isaac Lab's own SB3 wrapper reports the same row).
                out["final_obs"][done] = out["obs"][done]
        return len(done)

    def _obs_row(self, row: Any) -> np.ndarray:
        if isinstance(row, dict):
            row = row[self.obs_key or "policy"]
        return _numpy(row).reshape(self.obs_dim)

    def close(self) -> None:
        self.env.close()
        for closer in self.closers:
            closer()


def _make_isaaclab(task: str, num_envs: int, seed: int | None, options: dict[str, Any]) -> VectorTask:
    """Isaac Lab's task: the app first (it must exist before any other omni/isaaclab import)."""
    from isaaclab.app import AppLauncher

    launcher = AppLauncher(headless=True, device=options.get("device", "cuda:0"))
    import gymnasium as gym
    import isaaclab_tasks  # noqa: F401  (registers the Isaac-* ids)
    from isaaclab_tasks.utils import parse_env_cfg

    cfg = parse_env_cfg(task, device=options.get("device", "cuda:0"), num_envs=num_envs)
    if seed is not None:
        cfg.seed = seed
    if options.get("max_episode_steps") is not None:
        # Isaac Lab counts episodes in seconds of policy steps (sim.dt x decimation each).
        cfg.episode_length_s = int(options["max_episode_steps"]) * cfg.sim.dt * cfg.decimation
    env = gym.make(task, cfg=cfg)
    return VectorTask(env.unwrapped, options.get("obs_group", "policy"), [launcher.app.close])


def make_task(
    factory: str, task: str, num_envs: int, seed: int | None, options: dict[str, Any]
) -> VectorTask:
    """Build the task named by factory (`isaaclab` or `module:function`)."""
    if factory == "isaaclab":
        return _make_isaaclab(task, num_envs, seed, options)
    module_name, sep, func_name = factory.partition(":")
    if not sep or not func_name:
        raise ValueError(f"factory {factory!r} is neither 'isaaclab' nor 'module:function'")
    func = getattr(importlib.import_module(module_name), func_name)
    obs_key = options.pop("obs_group", None)
    return VectorTask(func(task, num_envs, seed, **options), obs_key, [])


def _attach(name: str) -> shared_memory.SharedMemory:
    shm = shared_memory.SharedMemory(name=name)
    # Python < 3.13 registers attached blocks with this process's resource tracker, which would unlink
    # the client's block when the server exits: the client owns it, so forget it here.
    with contextlib.suppress(Exception):
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
    return shm


def serve(sock: socket.socket, task: VectorTask) -> None:
    """Answer the client's commands until close or EOF."""
    send_message(
        sock,
        {
            "hello": "robolearn-isaac-server",
            "version": PROTOCOL_VERSION,
            "num_envs": task.num_envs,
            "observation_space": task.obs_space,
            "action_space": task.act_space,
            "pid": os.getpid(),
        },
    )
    shm: shared_memory.SharedMemory | None = None
    arrays: dict[str, np.ndarray] = {}
    try:
        while True:
            msg = recv_message(sock)
            if msg is None:
                return  # the client is gone
            cmd = msg.get("cmd")
            try:
                if cmd == "attach":
                    shm = _attach(str(msg["name"]))
                    arrays = views(shm.buf, task.num_envs, task.obs_dim, task.act_dim)
                    send_message(sock, {"ok": True})
                elif cmd == "reset":
                    task.reset(msg.get("seed"), arrays)
                    send_message(sock, {"ok": True})
                elif cmd == "step":
                    send_message(sock, {"ok": True, "done": task.step(arrays)})
                elif cmd == "ping":
                    send_message(sock, {"ok": True, "pid": os.getpid()})
                elif cmd == "close":
                    send_message(sock, {"ok": True})
                    return
                else:
                    send_message(sock, {"ok": False, "error": f"unknown command {cmd!r}"})
            except Exception as exc:  # reported to the client, which raises it as one line
                traceback.print_exc(file=sys.stderr)
                send_message(sock, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        arrays.clear()
        if shm is not None:
            shm.close()


def main(argv: list[str] | None = None) -> int:
    """Parse the client's arguments, build the task, serve."""
    parser = argparse.ArgumentParser(description="robolearn's out-of-process task server")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--factory", required=True)
    parser.add_argument("--task", required=True)
    parser.add_argument("--num-envs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--options", default="{}")
    args = parser.parse_args(argv)
    # Run by path, Python put this file's folder first on sys.path, where robolearn/isaac/isaaclab.py would
    # shadow Isaac Lab's own `isaaclab` package: drop it before the factory imports anything.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    # Ctrl-C in a terminal reaches the whole process group: the client decides when to stop (it
    # checkpoints first), then closes the server or its socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sock = socket.socket(fileno=args.fd)
    task = None
    try:
        task = make_task(args.factory, args.task, args.num_envs, args.seed, json.loads(args.options))
        serve(sock, task)
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        # The client names this last line in its error.
        print(f"isaac server: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if task is not None:
            task.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
