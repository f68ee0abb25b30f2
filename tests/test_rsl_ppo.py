"""agent=rsl_ppo: rsl-rl-lib's PPO driven by robolearn's loop (robolearn/runs/rsl_trainer.py).

Real rsl_rl, real envs, tiny networks: the run directory has the keys report/evaluate/export read,
a SIGINT or SIGKILL then `resume=` ends bit-identical to an uninterrupted run, bad values and a
missing rsl-rl-lib are one line, and the torch VecEnv adapter reports time-outs and clips actions.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from train_helpers import REPO, run_cli

from robolearn.agents.rsl_ppo import MISSING_RSL, RslPolicy, import_rsl, obs_groups
from robolearn.agents.rsl_vec_env import RslVecEnv
from robolearn.config.validate import compose_config, validate_train_config
from robolearn.envs import make_vec_env
from robolearn.errors import UserError
from robolearn.runs.rsl_trainer import train_rsl_ppo

pytestmark = pytest.mark.timeout(300)

# 8 envs x 24 steps = 192 env steps per iteration.
TINY_NETS = [
    "agent=rsl_ppo",
    "agent.n_envs=8",
    "agent.actor_hidden_dims=[16]",
    "agent.critic_hidden_dims=[16]",
    "eval.episodes=2",
    "logger.progress=none",
]
TINY_RSL = ["env=Pendulum-v1", *TINY_NETS]
PER_ITERATION = 8 * 24


def _config(*extra: str, base: list[str] = TINY_RSL) -> Any:
    return compose_config("train", [*base, *extra])


def _train(run: Path, *extra: str, base: list[str] = TINY_RSL) -> dict[str, Any]:
    cfg = _config(*extra, base=base)
    validate_train_config(cfg)
    return train_rsl_ppo(cfg, run, "test")


def _metrics_without_time(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith(("time/", "wall_time_s"))} for row in rows]


def test_a_run_writes_what_report_evaluate_and_export_read(tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = _train(run, f"steps={4 * PER_ITERATION}", f"eval.every={2 * PER_ITERATION}")
    assert summary["algo"] == "rsl_ppo" and summary["env"] == "Pendulum-v1"
    assert summary["steps"] == 4 * PER_ITERATION and summary["iterations"] == 4
    assert np.isfinite(summary["eval/mean_return"]) and summary["eval/episodes"] == 2
    assert len(summary["eval/returns"]) == 2 and summary["seed"] == 0
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.env.id == "Pendulum-v1" and saved.agent.algo == "rsl_ppo"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/value_loss" in r] == [PER_ITERATION * i for i in range(1, 5)]
    assert [r["step"] for r in rows if "eval/mean_return" in r] == [2 * PER_ITERATION, 4 * PER_ITERATION]
    # The final actor loads without the run and acts as the final evaluation did.
    policy = RslPolicy.load(run / "final" / "model.zip")
    action, _ = policy.predict(np.zeros(3, np.float32))
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
    batch, _ = policy.predict(np.zeros((5, 3), np.float32))
    assert batch.shape == (5, 1)

    from robolearn.evaluate import evaluate_run

    out = evaluate_run(
        OmegaConf.create(
            {
                "run": str(run),
                "checkpoint": "final",
                "episodes": 2,
                "seed": None,
                "deterministic": True,
                "video": False,
                "video_episodes": 1,
            }
        )
    )
    assert out["returns"] == summary["eval/returns"]
    # The newest checkpoint holds the same final actor (the run checkpoints at its end).
    latest = evaluate_run(
        OmegaConf.create(
            {
                "run": str(run),
                "checkpoint": "latest",
                "episodes": 2,
                "seed": None,
                "deterministic": True,
                "video": False,
                "video_episodes": 1,
            }
        )
    )
    assert latest["returns"] == summary["eval/returns"]

    from robolearn.export import OnnxExport, export_run

    exported = export_run(run, tmp_path / "policy", check_samples=32)
    assert isinstance(exported, OnnxExport) and (exported.root / "policy.onnx").is_file()
    # Export traces the normaliser inside the network: the ONNX matched predict() on raw inputs.
    assert exported.metadata["algo"] == "rsl_ppo"


def test_a_completed_run_is_skipped_and_extended_with_more_steps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _train(run, f"steps={2 * PER_ITERATION}", "eval.every=0")
    again = _train(run, f"steps={2 * PER_ITERATION}", "eval.every=0")
    assert again["wall_time_s"] == first["wall_time_s"]  # the same summary: nothing ran
    longer = _train(run, f"steps={3 * PER_ITERATION}", "eval.every=0")
    assert longer["steps"] == 3 * PER_ITERATION and longer["resumes"] == 1 and longer["iterations"] == 3


def _cli_args(run: Path, steps: int) -> list[str]:
    return [
        "robolearn.train",
        f"hydra.run.dir={run}",
        *TINY_RSL,
        f"steps={steps}",
        f"eval.every={8 * PER_ITERATION}",
        f"checkpoint.every={PER_ITERATION}",
    ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL])
def test_a_stopped_or_killed_run_resumes_bit_identically(tmp_path: Path, signum: int) -> None:
    # Long enough that the signal, sent once the first checkpoint exists, lands well before the end.
    steps = 24 * PER_ITERATION
    cut = tmp_path / "cut"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", *_cli_args(cut, steps)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    # The uninterrupted run, in this process, while the other one starts.
    whole = tmp_path / "whole"
    _train(whole, f"steps={steps}", f"eval.every={8 * PER_ITERATION}", f"checkpoint.every={PER_ITERATION}")
    deadline = time.monotonic() + 120
    pointer = cut / "checkpoints" / "latest.json"
    while not pointer.is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.01)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    if signum == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "stopped by SIGINT at step" in err and f"resume={cut}" in err
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (cut / "summary.json").exists(), "the run finished before the signal; the test proves nothing"
    resumed = run_cli("robolearn.train", f"resume={cut}", timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((whole / "summary.json").read_text())
    b = json.loads((cut / "summary.json").read_text())
    assert b["resumes"] == 1
    assert a["eval/returns"] == b["eval/returns"] and a["best/step"] == b["best/step"]
    assert _metrics_without_time(whole) == _metrics_without_time(cut)
    wa = torch.load(whole / "final" / "model.zip", weights_only=False)["actor_state_dict"]
    wb = torch.load(cut / "final" / "model.zip", weights_only=False)["actor_state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_linear_rate_decays_to_zero_over_the_run(tmp_path: Path) -> None:
    """agent.lr_schedule=linear with schedule=fixed: each update's rate is learning_rate x the share of
    the run still to go (SB3's linear schedule), so the last updates barely move the policy."""
    _train(
        tmp_path,
        "agent.schedule=fixed",
        "agent.lr_schedule=linear",
        "agent.learning_rate=0.003",
        f"steps={4 * PER_ITERATION}",
    )
    rates = [
        row["train/learning_rate"] for row in _metrics_without_time(tmp_path) if "train/learning_rate" in row
    ]
    assert rates == pytest.approx([0.003, 0.00225, 0.0015, 0.00075])


def test_actor_output_gain_scales_the_initial_mean_action_only() -> None:
    """agent.actor_output_gain=0.01 multiplies the actor's last layer at initialisation: from the same
    torch seed, its mean action is 0.01 x rsl_rl's own, and every other weight is the same."""
    from robolearn.agents.rsl_ppo import build_rsl_ppo

    env = RslVecEnv(make_vec_env(_config().env, n_envs=8, seed=0))
    try:
        algs = []
        for gain in ("1.0", "0.01"):
            torch.manual_seed(0)
            algs.append(build_rsl_ppo(_config(f"agent.actor_output_gain={gain}").agent, env, "cpu"))
        plain, small = (a.actor.mlp.state_dict() for a in algs)
        last = [k for k in plain if k.endswith("weight")][-1].rsplit(".", 1)[0]
        for key in plain:
            factor = 0.01 if key.startswith(last + ".") else 1.0
            torch.testing.assert_close(small[key], factor * plain[key])
        obs = env.get_observations()
        torch.testing.assert_close(algs[1].actor(obs), 0.01 * algs[0].actor(obs))
    finally:
        env.close()


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("agent.num_mini_batches=0", "agent.num_mini_batches=0 is out of range"),
        ("agent.num_mini_batches=1000", "exceeds the 192 samples"),
        ("agent.schedule=cosine", "agent.schedule=cosine is not allowed"),
        ("agent.lr_schedule=linear", "agent.lr_schedule=linear needs agent.schedule=fixed"),
        ("agent.activation=relux", "agent.activation=relux is not allowed (did you mean relu"),
        ("agent.normalize_obs=true", "agent.empirical_normalization=true"),
        ("agent.init_noise_std=0", "agent.init_noise_std=0.0 is out of range"),
        ("agent.actor_output_gain=0", "agent.actor_output_gain=0.0 is out of range"),
        ("agent.clip_param=-0.1", "agent.clip_param=-0.1 is out of range"),
        (
            "agent.env_on_device=true",
            "agent.env_on_device=true runs the task on the GPU backend; add env.kwargs.backend=warp",
        ),
    ],
)
def test_bad_values_are_one_line(override: str, needle: str) -> None:
    with pytest.raises(UserError) as info:
        validate_train_config(_config(override))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_an_unknown_observation_group_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        _train(tmp_path / "run", "steps=192", "agent.obs_groups.critic=[policy,privileged]")
    assert str(info.value) == (
        "agent.obs_groups.critic names privileged, which the env does not provide; "
        "its observation groups: policy"
    )


def test_groups_give_the_critic_privileged_observations() -> None:
    agent = OmegaConf.create({"obs_groups": {"actor": ["policy"], "critic": ["policy", "privileged"]}})
    assert obs_groups(agent, ["policy", "privileged"]) == {
        "actor": ["policy"],
        "critic": ["policy", "privileged"],
    }


def test_without_rsl_rl_lib_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "rsl_rl" or m.startswith("rsl_rl.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rsl_rl", None)  # makes `import rsl_rl...` raise ImportError
    with pytest.raises(UserError) as info:
        import_rsl()
    assert str(info.value) == MISSING_RSL == 'agent=rsl_ppo needs rsl-rl-lib: pip install "robolearn[rsl]"'


def test_the_adapter_reports_time_outs_and_clips_actions() -> None:
    cfg = compose_config("train", ["env=Pendulum-v1"])
    env = RslVecEnv(make_vec_env(cfg.env, n_envs=3, seed=0))
    obs = env.reset()
    assert list(obs.keys()) == ["policy"] and obs["policy"].shape == (3, 3)
    assert obs["policy"].dtype == torch.float32
    # Pendulum's reward is -(theta^2 + 0.1 thetadot^2 + 0.001 u^2): a clipped action of 2 costs 0.004.
    big = torch.full((3, 1), 50.0)
    for step in range(200):
        obs, rewards, dones, extras = env.step(big)
        assert rewards.shape == (3,) and dones.dtype == torch.bool
        if step < 199:
            assert not dones.any() and extras["time_outs"].sum() == 0
    # The 200-step limit is a truncation: done, time-out, and the episode reported.
    assert dones.all() and torch.equal(extras["time_outs"], torch.ones(3))
    assert len(extras["episodes"]) == 3 and all(length == 200 for _, length in extras["episodes"])
    env.close()


def test_the_batched_go2_task_trains_an_iteration(tmp_path: Path) -> None:
    """The batch backend under the adapter: one rsl_ppo iteration on Go2Velocity-v1, 4 envs."""
    summary = _train(
        tmp_path / "run",
        "env.kwargs.backend=batch",
        "agent.n_envs=4",
        "agent.num_steps_per_env=8",
        "steps=32",
        "eval.episodes=1",
        "env.max_episode_steps=20",
        base=["env=Go2Velocity-v1", *TINY_NETS],
    )
    assert summary["steps"] == 32 and np.isfinite(summary["eval/mean_return"])
    policy = RslPolicy.load(tmp_path / "run" / "final" / "model.zip")
    assert policy.action_space.shape == (12,)
    # A robot task's export: contract.json, raw observations in (the normaliser is in the graph).
    from robolearn.export import PolicyArtifact, export_run

    artifact = export_run(tmp_path / "run", tmp_path / "artifact", check_samples=16)
    assert isinstance(artifact, PolicyArtifact) and (artifact.root / "contract.json").is_file()
    assert artifact.contract.normalization is None and artifact.contract.source["algo"] == "rsl_ppo"


def test_the_velocity_task_gives_only_the_critic_the_base_velocity(tmp_path: Path) -> None:
    """critic_observes_base_lin_vel: the batched VecEnv carries the body-frame base velocity x 2 in
    step with the observations (a reset env's row is its new episode's), the adapter hands it over as
    the "critic" group, the critic's input is the actor's plus 3, and the exported actor reads the
    actor's observation alone."""
    from robolearn.envs.tasks.rotations import quat_rotate_inverse_rows

    base = ["env=Go2Velocity-v1", *TINY_NETS, "env.kwargs.backend=batch", "env.max_episode_steps=6"]
    # A push every step: the critic's row must be the velocity of the frame the actor observed, before
    # the push's kick (as the observation), not after it.
    pushes = [
        "+env.kwargs.randomization.push_interval_s=[0.01,0.01]",
        "+env.kwargs.randomization.push_velocity=0.5",
    ]
    cfg = _config("+env.kwargs.critic_observes_base_lin_vel=true", "agent.n_envs=3", *pushes, base=base)
    env = RslVecEnv(make_vec_env(cfg.env, n_envs=3, seed=0))
    obs = env.reset()
    assert list(obs.keys()) == ["policy", "critic"]
    width = obs["policy"].shape[1]
    assert width == 45  # the actor's observation has no base velocity in it
    task: Any = env.venv.task  # type: ignore[attr-defined]
    observed: list[Any] = []
    push = task._push

    def push_after_recording() -> None:
        observed.append(task.backend.frame())  # the frame step_envs observes
        push()

    task._push = push_after_recording
    resets = kicks = 0
    for _ in range(14):
        obs, _, dones, _ = env.step(torch.zeros(3, 12))
        before, after = observed[-1], task.backend.frame()
        expected = quat_rotate_inverse_rows(before.root_quat, before.root_lin_vel) * 2.0
        # Envs reset in this step observe their new episode's first frame, and so does the critic.
        reset = dones.numpy()
        expected[reset] = quat_rotate_inverse_rows(after.root_quat, after.root_lin_vel)[reset] * 2.0
        np.testing.assert_allclose(obs["critic"].numpy(), expected, rtol=1e-5, atol=1e-6)
        kicked = quat_rotate_inverse_rows(after.root_quat, after.root_lin_vel)[~reset] * 2.0
        kicks += int(np.sum(np.abs(kicked - expected[~reset]).max(axis=1, initial=0.0) > 1e-3))
        resets += int(dones.sum())
    assert resets >= 3  # reset rows were checked too (6-step episodes)
    assert kicks >= 20  # and the pushes moved the base after the observed frame
    env.close()

    summary = _train(
        tmp_path / "run",
        "+env.kwargs.critic_observes_base_lin_vel=true",
        "agent.obs_groups.critic=[policy,critic]",
        "agent.n_envs=4",
        "agent.num_steps_per_env=8",
        "steps=32",
        "eval.episodes=1",
        base=base,
    )
    assert summary["steps"] == 32
    state = torch.load(tmp_path / "run" / "final" / "model.zip", weights_only=False)
    assert state["obs_shapes"] == {"policy": width, "critic": 3}
    assert state["obs_groups"] == {"actor": ["policy"], "critic": ["policy", "critic"]}
    policy = RslPolicy.load(tmp_path / "run" / "final" / "model.zip")
    action, _ = policy.predict(np.zeros(width, dtype=np.float32))
    assert action.shape == (12,)
    from robolearn.export import export_run

    artifact = export_run(tmp_path / "run", tmp_path / "artifact", check_samples=16)
    contract = artifact.contract
    assert "base_lin_vel" not in [t.name for t in contract.terms] and contract.input_size == width


def test_a_stacked_history_trains_and_exports_with_its_length(tmp_path: Path) -> None:
    """observation_history=3 with a blind actor: the actor reads 3 frames of 45, the critic those and
    the base velocity, and the export's contract says history 3 so the deploy runtime stacks the same
    (tests/deploy/test_deploy_golden.py checks that stacking against the env's)."""
    from robolearn.export import export_run

    base = ["env=Go2Velocity-v1", *TINY_NETS, "env.kwargs.backend=batch", "env.max_episode_steps=6"]
    summary = _train(
        tmp_path / "run",
        "+env.kwargs.observation_history=3",
        "+env.kwargs.critic_observes_base_lin_vel=true",
        "agent.obs_groups.critic=[policy,critic]",
        "agent.n_envs=4",
        "agent.num_steps_per_env=8",
        "steps=32",
        "eval.episodes=1",
        base=base,
    )
    assert summary["steps"] == 32
    state = torch.load(tmp_path / "run" / "final" / "model.zip", weights_only=False)
    assert state["obs_shapes"] == {"policy": 3 * 45, "critic": 3}
    contract = export_run(tmp_path / "run", tmp_path / "artifact", check_samples=16).contract
    assert (contract.history_length, contract.frame_size, contract.input_size) == (3, 45, 135)
    import onnxruntime as ort

    graph = ort.InferenceSession(str(tmp_path / "artifact" / "policy.onnx"))
    assert graph.get_inputs()[0].shape[-1] == 135


def test_init_from_starts_from_another_runs_networks(tmp_path: Path) -> None:
    """agent.init_from (fine-tuning): the new run's networks and normaliser start as the source's
    newest checkpoint left them; a source whose networks do not fit is a one-line error."""
    source = tmp_path / "source"
    _train(source, f"steps={3 * PER_ITERATION}", f"checkpoint.every={PER_ITERATION}")
    tuned = tmp_path / "tuned"
    # A rate of ~0 and a fixed schedule: one iteration leaves the started-from weights in place.
    _train(
        tuned,
        f"agent.init_from={source}",
        "agent.learning_rate=1e-12",
        "agent.schedule=fixed",
        f"steps={PER_ITERATION}",
    )
    fresh = tmp_path / "fresh"
    _train(fresh, "agent.learning_rate=1e-12", "agent.schedule=fixed", f"steps={PER_ITERATION}")
    load = lambda run: torch.load(run / "final" / "model.zip", weights_only=False)["actor_state_dict"]  # noqa: E731
    src, got, new = load(source), load(tuned), load(fresh)
    weights = [k for k in src if k.endswith("weight")]
    assert weights
    for key in weights:
        torch.testing.assert_close(got[key], src[key], atol=1e-6, rtol=0)
    assert any(not torch.allclose(new[k], src[k]) for k in weights)  # a fresh run starts elsewhere
    with pytest.raises(UserError, match=r"agent.init_from=.*: its networks do not fit this run's"):
        _train(
            tmp_path / "bigger",
            f"agent.init_from={source}",
            "agent.actor_hidden_dims=[32]",
            f"steps={PER_ITERATION}",
        )
    with pytest.raises(UserError, match="has no checkpoint"):
        _train(tmp_path / "none", f"agent.init_from={tmp_path / 'missing'}", f"steps={PER_ITERATION}")


def test_the_actor_and_the_critic_cannot_both_be_given_the_base_velocity() -> None:
    from robolearn.envs.tasks.velocity import VelocityTask

    with pytest.raises(UserError, match="critic_observes_base_lin_vel=true with observe_base_lin_vel=true"):
        VelocityTask(observe_base_lin_vel=True, critic_observes_base_lin_vel=True)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["agent=sac"], "feeds rsl_rl's critic group, which agent=sac does not read"),
        (
            ["agent=rsl_ppo", "env.kwargs.backend=mujoco"],
            "env.kwargs.backend=mujoco has none: set env.kwargs.backend=batch",
        ),
    ],
)
def test_a_critic_only_velocity_nobody_reads_is_one_line(overrides: list[str], needle: str) -> None:
    cfg = compose_config(
        "train", ["env=Go2Velocity-v1", "+env.kwargs.critic_observes_base_lin_vel=true", *overrides]
    )
    with pytest.raises(UserError) as info:
        validate_train_config(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_privileged_values_the_critic_leaves_out_are_one_line(tmp_path: Path) -> None:
    base = ["env=Go2Velocity-v1", *TINY_NETS, "env.kwargs.backend=batch", "env.max_episode_steps=6"]
    with pytest.raises(UserError, match=r"leaves them out; set agent.obs_groups.critic=\[policy,critic\]"):
        _train(
            tmp_path / "run",
            "+env.kwargs.critic_observes_base_lin_vel=true",
            "agent.n_envs=2",
            "steps=48",
            base=base,
        )
