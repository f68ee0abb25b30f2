"""The out-of-process task server (robolearn/isaac): the MuJoCo stand-in behind the server protocol steps
exactly like the same task in process, survives a client restart, a killed server ends stepping with one
line, no shared memory is left in /dev/shm, and `robolearn.train env=isaaclab:standin:...` writes a run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robolearn.envs.vector import make_batched_env
from robolearn.errors import UserError
from robolearn.isaac import client as client_module
from robolearn.isaac.client import SHM_PREFIX, STANDIN_FACTORY, IsaacVecEnv, ServerConnection

TASK = "Go2Velocity-v1"
N = 4
STEPS = 40
MAX_STEPS = 15  # short episodes, so resets (and final observations) happen within STEPS


REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`python -m <args>` in the repository, output captured."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


def _blocks() -> set[str]:
    shm = Path("/dev/shm")
    return {p.name for p in shm.iterdir() if p.name.startswith(SHM_PREFIX)} if shm.is_dir() else set()


def _standin(n: int = N, seed: int = 3, **kw: Any) -> IsaacVecEnv:
    conn = ServerConnection(
        TASK, n, factory=STANDIN_FACTORY, seed=seed, options={"max_episode_steps": MAX_STEPS}, **kw
    )
    venv = IsaacVecEnv(conn)
    venv.seed(seed)
    return venv


def _leaked(before: set[str]) -> set[str]:
    """New blocks made by this process, or by one that has exited (its client died without unlinking).
    Blocks of live processes are another test's (pytest-xdist runs tests side by side)."""
    leaked = set()
    for name in _blocks() - before:
        pid = int(name[len(SHM_PREFIX) :].split("_")[0])
        if pid == os.getpid() or not _alive(pid):
            leaked.add(name)
    return leaked


@pytest.fixture(autouse=True)
def _no_leak() -> Iterator[None]:
    before = _blocks()
    yield
    deadline = time.monotonic() + 5.0  # a killed client's server unlinks its block as it notices
    while _leaked(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _leaked(before) == set(), "shared memory left in /dev/shm"


def test_standin_matches_in_process_stepping() -> None:
    remote = _standin()
    local = make_batched_env(f"robolearn/{TASK}", N, seed=3, threads=1, max_episode_steps=MAX_STEPS)
    rng = np.random.default_rng(0)
    try:
        np.testing.assert_array_equal(remote.reset(), local.reset())
        finished = 0
        for _ in range(STEPS):
            actions = rng.uniform(-1, 1, size=(N, 12)).astype(np.float32)
            r_obs, r_rew, r_done, r_info = remote.step(actions)
            l_obs, l_rew, l_done, l_info = local.step(actions)
            np.testing.assert_array_equal(r_obs, l_obs)
            np.testing.assert_array_equal(r_rew, l_rew)
            np.testing.assert_array_equal(r_done, l_done)
            for i in np.flatnonzero(l_done):
                finished += 1
                np.testing.assert_array_equal(
                    r_info[i]["terminal_observation"], l_info[i]["terminal_observation"]
                )
                assert r_info[i]["TimeLimit.truncated"] == l_info[i]["TimeLimit.truncated"]
                assert r_info[i]["episode"]["l"] == l_info[i]["episode"]["l"]
                assert r_info[i]["episode"]["r"] == pytest.approx(l_info[i]["episode"]["r"], rel=1e-6)
        assert finished >= N  # every env went through at least one autoreset
        assert isinstance(r_obs, np.ndarray) and r_obs.dtype == np.float32 and r_obs.flags.c_contiguous
    finally:
        remote.close()
        local.close()


def test_client_restart_starts_a_fresh_server() -> None:
    first = _standin()
    obs0 = first.reset()
    first.step(np.zeros((N, 12), np.float32))
    proc = first.conn.proc
    first.close()
    assert proc.poll() == 0  # the server ended cleanly on close
    first.close()  # idempotent
    with pytest.raises(UserError, match="closed"):
        first.step(np.zeros((N, 12), np.float32))
    second = _standin()
    try:
        np.testing.assert_array_equal(second.reset(), obs0)  # same seed, same first observation
        assert second.conn.proc.pid != proc.pid
        second.step(np.zeros((N, 12), np.float32))
    finally:
        second.close()


def test_killed_server_ends_stepping_with_one_line() -> None:
    venv = _standin()
    venv.reset()
    os.kill(venv.conn.proc.pid, signal.SIGKILL)
    with pytest.raises(UserError) as err:
        venv.step(np.zeros((N, 12), np.float32))
    message = str(err.value)
    assert "\n" not in message
    assert f"isaaclab:{TASK}" in message and "code -9" in message
    assert "last stderr line" in message
    venv.close()  # after the error: a no-op, and the block is already unlinked (fixture)


def test_crash_at_start_names_the_servers_last_stderr_line() -> None:
    with pytest.raises(UserError) as err:
        ServerConnection("NoSuchTask-v1", 2, factory=STANDIN_FACTORY)
    message = str(err.value)
    assert "\n" not in message
    assert "exited with code 1" in message
    assert "isaac server: UserError: make_batched_env serves robolearn's own tasks" in message


def test_protocol_version_mismatch_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_module.protocol, "PROTOCOL_VERSION", 99)
    with pytest.raises(UserError, match=r"speaks protocol 1, this client 99"):
        ServerConnection(TASK, 1, factory=STANDIN_FACTORY)


def test_server_and_block_go_when_the_client_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from robolearn.isaac.client import ServerConnection, STANDIN_FACTORY
        conn = ServerConnection({TASK!r}, 2, factory=STANDIN_FACTORY)
        print(json.dumps({{"pid": conn.proc.pid, "block": conn.shm.name}}), flush=True)
        time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        assert info["block"] in _blocks()
        child.kill()
        child.wait()
        deadline = time.monotonic() + 20
        while (info["block"] in _blocks() or _alive(info["pid"])) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(info["pid"]), "the server outlived its client"
        assert info["block"] not in _blocks(), "the killed client's block was not unlinked"
    finally:
        if child.poll() is None:
            child.kill()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def test_train_on_the_standin_writes_a_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = run_cli(
        "robolearn.train",
        f"env=isaaclab:standin:{TASK}",
        "env.max_episode_steps=50",
        "agent=ppo",
        "agent.n_envs=4",
        "agent.n_steps=32",
        "agent.batch_size=64",
        "agent.n_epochs=1",
        "agent.policy_kwargs.net_arch=[16]",
        "steps=256",
        "eval.every=0",
        "eval.episodes=1",
        "checkpoint.every=128",
        "logger.progress=none",
        f"hydra.run.dir={run}",
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 256
    assert np.isfinite(summary["eval/mean_return"]) and summary["eval/episodes"] == 1
    config = (run / "config.yaml").read_text()
    assert "backend: isaaclab" in config and f"id: standin:{TASK}" in config
    assert (run / "final").is_dir() and any((run / "checkpoints").iterdir())


def _server_pids(parent: int) -> dict[int, int]:
    """{pid: num_envs} of the task servers a process started."""
    out: dict[int, int] = {}
    for children in Path(f"/proc/{parent}/task").glob("*/children"):
        for pid in map(int, children.read_text().split()):
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except FileNotFoundError:
                continue
            if any(a.endswith(b"server.py") for a in argv):
                out[pid] = int(argv[argv.index(b"--num-envs") + 1])
    return out


def test_killed_server_ends_training_with_one_line_and_keeps_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = [
        "robolearn.train",
        f"env=isaaclab:standin:{TASK}",
        "env.max_episode_steps=50",
        "agent=ppo",
        "agent.n_envs=4",
        "agent.n_steps=16",
        "agent.batch_size=64",
        "agent.n_epochs=1",
        "agent.policy_kwargs.net_arch=[16]",
        "steps=100000",
        "eval.every=0",
        "checkpoint.every=64",
        "logger.progress=none",
        f"hydra.run.dir={run}",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        latest = run / "checkpoints" / "latest.json"
        while not latest.is_file():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        servers = _server_pids(proc.pid)
        train_server = max(servers, key=lambda pid: servers[pid])
        assert servers[train_server] == 4
        os.kill(train_server, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: isaaclab:{TASK}: the task server exited with code -9"), last
    assert (run / "error.txt").is_file()
    # The last checkpoint is whole: the run resumes from it and finishes.
    pointer = json.loads(latest.read_text())
    step = int(pointer["step"])
    assert step >= 64
    out = run_cli("robolearn.train", f"resume={run}", f"steps={step + 64}", timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"resuming {run} from step {step}" in out.stdout
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"


class _IsaacLabShaped:
    """Isaac Lab's call shapes (ManagerBasedRLEnv): dict observations by group as torch tensors, an
    unbounded action space, resets inside step() and no final observation unless `final_obs` is set.
    Isaac Lab itself does not run here (no RTX GPU); this checks the server's adapter on its shapes."""

    def __init__(self, n: int, with_final: bool) -> None:
        import gymnasium as gym

        self.num_envs, self.with_final, self.t = n, with_final, 0
        self.single_observation_space = gym.spaces.Dict(
            {
                "policy": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                "critic": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32),
            }
        )
        self.single_action_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    def _obs(self, value: float) -> dict[str, Any]:
        import torch

        return {"policy": torch.full((self.num_envs, 3), value), "critic": torch.zeros(self.num_envs, 5)}

    def reset(self, seed: int | None = None) -> tuple[dict[str, object], dict[str, object]]:
        self.t = 0
        return self._obs(0.0), {}

    def step(self, actions: np.ndarray) -> tuple[object, ...]:
        import torch

        self.t += 1
        done = torch.tensor([self.t % 2 == 0] + [False] * (self.num_envs - 1))
        extras: dict[str, object] = {"log": {}}
        if self.with_final:
            extras["final_obs"] = self._obs(float(self.t))
        obs = self._obs(float(self.t))
        obs["policy"][done] = -1.0  # the reset env's first observation of its next episode
        return obs, torch.ones(self.num_envs), done, torch.zeros(self.num_envs, dtype=torch.bool), extras

    def close(self) -> None:
        pass


@pytest.mark.parametrize("with_final", [False, True], ids=["no_final_obs", "final_obs_by_group"])
def test_server_adapter_on_isaac_lab_shapes(with_final: bool) -> None:
    from robolearn.isaac.server import VectorTask, views

    task = VectorTask(_IsaacLabShaped(3, with_final), "policy", [])
    assert task.obs_space == {"shape": [3], "low": [None] * 3, "high": [None] * 3}  # JSON has no inf
    buf = bytearray(1 << 12)
    out = views(buf, 3, task.obs_dim, task.act_dim)
    task.reset(0, out)
    assert task.step(out) == 0
    np.testing.assert_array_equal(out["obs"], np.ones((3, 3), np.float32))
    assert task.step(out) == 1  # env 0 finished at t=2
    assert out["terminated"].tolist() == [1, 0, 0] and out["reward"].tolist() == [1.0, 1.0, 1.0]
    np.testing.assert_array_equal(out["obs"][0], [-1.0, -1.0, -1.0])
    # With Isaac Lab's final_obs, the episode's last observation; without it, the reset row (as Isaac
    # Lab's own SB3 wrapper reports).
    np.testing.assert_array_equal(out["final_obs"][0], [2.0, 2.0, 2.0] if with_final else [-1.0, -1.0, -1.0])


def test_action_bound_closes_unbounded_action_entries() -> None:
    space = client_module._space({"shape": [2], "low": [None, -1.0], "high": [None, 1.0]}, 100.0)
    assert space.low.tolist() == [-100.0, -1.0] and space.high.tolist() == [100.0, 1.0]
    assert not client_module._space({"shape": [1], "low": [None], "high": [None]}).is_bounded()
