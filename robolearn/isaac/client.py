"""Client side of the out-of-process task server (robolearn/isaac/server.py): an SB3 VecEnv, and a
single gymnasium Env for evaluation, whose task runs in another interpreter (Isaac Lab's).

One server process per client: `close()` ends it, and a new client starts a new server (Isaac Sim's
start-up, minutes, is paid once per run, as with Isaac Lab's own train scripts). The client creates
the shared-memory block after the server's handshake and unlinks it on every exit path (close, a
dying server, garbage collection, interpreter exit); a server whose client dies sees EOF and exits.

A server that dies, crashes, closes its socket or stops answering within the timeout ends stepping
with one UserError line naming the task, the exit code and the server's last stderr line; the
training run then ends like any UserError (exit 2), with its last checkpoint untouched.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import select
import socket
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from robolearn.envs.vector import batch_state_method
from robolearn.errors import UserError
from robolearn.isaac import server as protocol

SERVER_SCRIPT = Path(protocol.__file__).resolve()
STANDIN_FACTORY = "robolearn.isaac.standin:make_standin"
SHM_PREFIX = "robolearn_isaac_"


def _space(desc: dict[str, Any], bound: float | None = None) -> gym.spaces.Box:
    """A handshake's space description as a Box; `bound` replaces unbounded entries by +-bound."""
    shape = tuple(desc["shape"])
    inf = np.inf if bound is None else float(bound)
    low = np.array([-inf if v is None else v for v in desc["low"]], dtype=np.float32).reshape(shape)
    high = np.array([inf if v is None else v for v in desc["high"]], dtype=np.float32).reshape(shape)
    return gym.spaces.Box(low, high, dtype=np.float32)


class ServerConnection:
    """One server process: start, handshake, shared block, request/reply, shutdown."""

    def __init__(
        self,
        task: str,
        num_envs: int,
        *,
        python: str | None = None,
        factory: str = "isaaclab",
        seed: int | None = None,
        options: dict[str, Any] | None = None,
        action_bound: float | None = None,
        start_timeout_s: float = 600.0,
        step_timeout_s: float = 60.0,
        verbose: bool = False,
    ) -> None:
        self.task = task
        self.num_envs = int(num_envs)
        self.python = python or sys.executable
        self.step_timeout_s = float(step_timeout_s)
        self.shm: shared_memory.SharedMemory | None = None
        self.arrays: dict[str, np.ndarray] = {}
        self.closed = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        if not Path(self.python).is_file() and not _on_path(self.python):
            raise UserError(
                f"env.kwargs.python={self.python} does not exist; give the path to Isaac Lab's interpreter "
                "(e.g. ~/env_isaaclab/bin/python, docs/isaac.md)"
            )
        parent, child = socket.socketpair()
        self.sock = parent
        cmd = [
            self.python,
            str(SERVER_SCRIPT),
            "--fd",
            str(child.fileno()),
            "--factory",
            factory,
            "--task",
            task,
            "--num-envs",
            str(self.num_envs),
            "--options",
            json.dumps(options or {}),
        ]
        if seed is not None:
            cmd += ["--seed", str(int(seed))]
        try:
            self.proc = subprocess.Popen(
                cmd,
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=None if verbose else subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                # The server must not import this checkout's robolearn by accident: it runs by path.
                env={k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"},
            )
        except OSError as exc:
            parent.close()
            child.close()
            raise UserError(f"env.kwargs.python={self.python} could not start: {exc}") from None
        child.close()
        self._stderr_thread = threading.Thread(target=self._read_stderr, args=(verbose,), daemon=True)
        self._stderr_thread.start()
        # Unlink the block and stop the server when this object is collected or the interpreter exits
        # (weakref.finalize runs at exit), even if nobody calls close().
        self._finalizer = weakref.finalize(self, _cleanup, self.sock, self.proc, [None])
        try:
            hello = self._receive(start_timeout_s, "starting")
            self._check_hello(hello)
            self.obs_space = _space(hello["observation_space"])
            self.act_space = _space(hello["action_space"], action_bound)
            obs_dim, act_dim = self.obs_space.shape[0], self.act_space.shape[0]
            # The creator's pid in the name: a leak check can tell this process's blocks from others'.
            name = f"{SHM_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"
            self.shm = shared_memory.SharedMemory(
                name=name, create=True, size=protocol.block_size(self.num_envs, obs_dim, act_dim)
            )
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _cleanup, self.sock, self.proc, [self.shm])
            self.arrays = protocol.views(self.shm.buf, self.num_envs, obs_dim, act_dim)
            self.request({"cmd": "attach", "name": name})
        except BaseException:
            self.close()
            raise

    # -- plumbing ------------------------------------------------------------------------------------
    def _read_stderr(self, echo: bool) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self._stderr_tail.append(line)
            if echo:
                print(line, file=sys.stderr, flush=True)

    def _check_hello(self, hello: dict[str, Any]) -> None:
        version = hello.get("version")
        if version != protocol.PROTOCOL_VERSION:
            raise UserError(
                f"isaaclab:{self.task}: the server at {self.python} speaks protocol {version}, this client "
                f"{protocol.PROTOCOL_VERSION}; run the server.py of this robolearn (it is launched by path)"
            )
        if int(hello["num_envs"]) != self.num_envs:
            raise UserError(
                f"isaaclab:{self.task}: asked for {self.num_envs} envs, the server made {hello['num_envs']}"
            )

    def _died(self, what: str) -> UserError:
        """The one-line error for a server that is gone or stuck (and stop it)."""
        code = self.proc.poll()
        if code is None:
            self.proc.kill()
            code = self.proc.wait()
            state = f"did not answer ({what}) and was killed (exit code {code})"
        else:
            state = f"exited with code {code} while {what}"
        self._stderr_thread.join(timeout=2.0)
        last = self._stderr_tail[-1] if self._stderr_tail else "(no stderr output)"
        self.close()
        return UserError(f"isaaclab:{self.task}: the task server {state}; its last stderr line: {last}")

    def _receive(self, timeout_s: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._died(f"{what}, after {timeout_s:g} s")
            ready, _, _ = select.select([self.sock], [], [], min(left, 0.5))
            if ready:
                try:
                    msg = protocol.recv_message(self.sock)
                except OSError:
                    msg = None
                if msg is None:
                    # EOF: the server is exiting; give it a moment so its exit code can be named.
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=5.0)
                    raise self._died(what)
                return msg
            if self.proc.poll() is not None:
                raise self._died(what)

    def block(self) -> dict[str, np.ndarray]:
        """The shared block's arrays; a closed connection is one UserError line."""
        if self.closed:
            raise UserError(f"isaaclab:{self.task}: the task server was closed; build a new env")
        return self.arrays

    def request(self, message: dict[str, Any], timeout_s: float | None = None) -> dict[str, Any]:
        """Send one command and return the server's reply; a dead server is one UserError line."""
        self.block()
        what = f"answering {message['cmd']}"
        try:
            protocol.send_message(self.sock, message)
        except OSError:
            raise self._died(what) from None
        reply = self._receive(self.step_timeout_s if timeout_s is None else timeout_s, what)
        if not reply.get("ok"):
            raise UserError(
                f"isaaclab:{self.task}: the task server failed {message['cmd']}: {reply.get('error')}"
            )
        return reply

    def close(self) -> None:
        """Ask the server to close, stop it if it will not, and unlink the shared block. Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.proc.poll() is None:
            try:
                protocol.send_message(self.sock, {"cmd": "close"})
                self.proc.wait(timeout=30.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.arrays = {}
        self._finalizer()


def _on_path(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None


def _cleanup(sock: socket.socket, proc: subprocess.Popen[bytes], shms: list[Any]) -> None:
    """Stop the server (if still running) and unlink the block: safe to call more than once."""
    sock.close()
    if proc.poll() is None:
        try:
            proc.wait(timeout=5.0)  # EOF on its socket ends a healthy server
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for shm in shms:
        if shm is None:
            continue
        # A numpy view still alive makes close() refuse; the unlink below still frees the name.
        with contextlib.suppress(BufferError):
            shm.close()
        with contextlib.suppress(FileNotFoundError):
            shm.unlink()


class IsaacVecEnv(VecEnv):
    """SB3 VecEnv over a task server, with SB3's same-step autoreset (terminal_observation in infos).

    Episode statistics are counted here as SB3's Monitor does (`info["episode"] = {"r", "l", "t"}`).
    Env state is not snapshotted (Isaac Lab's simulator cannot be): `get_state` gives the episode
    counters only, and restoring a checkpoint resets the envs, so a resumed run continues from fresh
    episodes (agent, optimiser and RNG states stay exact).
    """

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn
        self._actions_ready = False
        self.episode_return = np.zeros(conn.num_envs)
        self.episode_length = np.zeros(conn.num_envs, dtype=np.int64)
        self.t_start = time.time()
        self.render_mode = None  # read by VecEnv.__init__; the server renders nothing
        super().__init__(conn.num_envs, conn.obs_space, conn.act_space)

    def reset(self) -> VecEnvObs:
        """Reset every env; a seed from seed() goes to the server's reset."""
        seed = self._seeds[0]
        self.conn.request({"cmd": "reset", "seed": None if seed is None else int(seed)})
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0
        return self.conn.arrays["obs"].copy()

    def step_async(self, actions: np.ndarray) -> None:
        """Write the actions into the shared block."""
        block = self.conn.block()["actions"]
        block[:] = np.asarray(actions, dtype=np.float32).reshape(block.shape)
        self._actions_ready = True

    def step_wait(self) -> VecEnvStepReturn:
        """Step the server; finished envs report terminal_observation and their episode."""
        if not self._actions_ready:
            raise RuntimeError("step_async must be called before step_wait")
        self._actions_ready = False
        self.conn.request({"cmd": "step"})
        a = self.conn.arrays
        # Copies: the block is overwritten by the next step, while SB3 keeps these arrays.
        obs = a["obs"].copy()
        reward = a["reward"].copy()
        terminated = a["terminated"].astype(bool)
        truncated = a["truncated"].astype(bool)
        self.episode_return += reward
        self.episode_length += 1
        done = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        ids = np.flatnonzero(done)
        if len(ids):
            now = round(time.time() - self.t_start, 6)
            for i in ids:
                infos[i] = {
                    "terminal_observation": a["final_obs"][i].copy(),
                    "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                    "episode": {
                        "r": float(self.episode_return[i]),
                        "l": int(self.episode_length[i]),
                        "t": now,
                    },
                }
            self.episode_return[ids] = 0.0
            self.episode_length[ids] = 0
        return obs, reward, done, infos

    def close(self) -> None:
        """Close the server and unlink the shared block."""
        self.conn.close()

    def get_state(self) -> dict[str, Any]:
        """Episode counters only (see the class docstring)."""
        return {
            "server": "not snapshotted",
            "episode_return": self.episode_return.copy(),
            "episode_length": self.episode_length.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Reset the envs (their simulator state was not saved) and start fresh episode counters."""
        self.reset()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Attributes of this client (the task's own live in the server)."""
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on this client."""
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """get_state/set_state as BatchedVecEnv's (index 0 carries the batch); nothing else travels."""
        handled = batch_state_method(
            self, method_name, method_args, method_kwargs, list(self._get_indices(indices))
        )
        if handled is not None:
            return handled
        raise AttributeError(
            f"isaaclab:{self.conn.task}: env_method({method_name!r}) does not cross the process"
        )

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No env is a wrapped gymnasium.Env here."""
        return [False for _ in self._get_indices(indices)]


class IsaacSingleEnv(gym.Env[np.ndarray, np.ndarray]):
    """One env of a task server as a gymnasium Env (for evaluation: reset(seed=...) per episode).

    The server resets a finished env in the same step; this env returns the finished episode's last
    observation, and the caller's next reset(seed=...) starts the next episode.
    """

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, conn: ServerConnection) -> None:
        if conn.num_envs != 1:
            raise ValueError("IsaacSingleEnv needs a server with num_envs=1")
        self.conn = conn
        self.observation_space = conn.obs_space
        self.action_space = conn.act_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the env (seeded when seed is given)."""
        super().reset(seed=seed)
        self.conn.request({"cmd": "reset", "seed": seed})
        return self.conn.arrays["obs"][0].copy(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step once; at an episode's end, the final observation."""
        a = self.conn.block()
        a["actions"][0] = np.asarray(action, dtype=np.float32).reshape(a["actions"].shape[1:])
        self.conn.request({"cmd": "step"})
        terminated, truncated = bool(a["terminated"][0]), bool(a["truncated"][0])
        obs = a["final_obs"][0] if terminated or truncated else a["obs"][0]
        return obs.copy(), float(a["reward"][0]), terminated, truncated, {}

    def close(self) -> None:
        """Close the server and unlink the shared block."""
        self.conn.close()


# -- from an env config node -------------------------------------------------------------------------
def _options(env_cfg: Any) -> dict[str, Any]:
    kwargs = env_cfg.get("kwargs") if hasattr(env_cfg, "get") else getattr(env_cfg, "kwargs", None)
    if kwargs is None:
        return {}
    if hasattr(kwargs, "_get_node"):  # an OmegaConf node
        from omegaconf import OmegaConf

        resolved = OmegaConf.to_container(kwargs, resolve=True)
        assert isinstance(resolved, dict)
        return dict(resolved)
    return dict(kwargs)


def _connection_args(
    env_id: str, kwargs: dict[str, Any], max_episode_steps: int | None = None
) -> tuple[str, dict[str, Any]]:
    """(server task id, ServerConnection keyword arguments) for an env id and env.kwargs."""
    kwargs = dict(kwargs)
    kwargs.pop("backend", None)
    kwargs.pop("num_envs", None)
    task_options = dict(kwargs.pop("task_options", None) or {})
    conn = {
        "python": kwargs.pop("python", None),
        "start_timeout_s": float(kwargs.pop("start_timeout_s", 600.0)),
        "step_timeout_s": float(kwargs.pop("step_timeout_s", 60.0)),
        "verbose": bool(kwargs.pop("verbose", False)),
        "action_bound": kwargs.pop("action_bound", None),
    }
    if kwargs:
        raise UserError(
            f"env.kwargs.{sorted(kwargs)[0]} is not an isaaclab option; use python, task_options, "
            "action_bound, start_timeout_s, step_timeout_s, verbose (docs/isaac.md)"
        )
    task = env_id
    if env_id.startswith("standin:"):
        task = env_id.split(":", 1)[1]
        conn["factory"] = STANDIN_FACTORY
    else:
        conn["factory"] = "isaaclab"
    if "obs_group" in task_options or conn["factory"] == "isaaclab":
        task_options.setdefault("obs_group", "policy")
    if max_episode_steps is not None:
        task_options["max_episode_steps"] = int(max_episode_steps)
    conn["options"] = task_options
    return task, conn


def make_isaac_vec_env(env_cfg: Any, n_envs: int, seed: int | None) -> IsaacVecEnv:
    """The training VecEnv for env.kwargs.backend=isaaclab: one server with n_envs envs."""
    task, conn = _connection_args(str(env_cfg.get("id")), _options(env_cfg), env_cfg.get("max_episode_steps"))
    venv = IsaacVecEnv(ServerConnection(task, n_envs, seed=seed, **conn))
    venv.seed(seed)
    return venv


def make_isaac_env(env_cfg: Any) -> IsaacSingleEnv:
    """A single env (its own server, num_envs=1) for evaluation and export."""
    task, conn = _connection_args(str(env_cfg.get("id")), _options(env_cfg), env_cfg.get("max_episode_steps"))
    return IsaacSingleEnv(ServerConnection(task, 1, **conn))
