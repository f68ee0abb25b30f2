"""`python -m robolearn.imitation.train` end to end on a tiny bimodal dataset: run dir, summary, resume, errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from omegaconf import OmegaConf

pytest.importorskip("diffusers")

from robolearn.datasets import Episode, write_dataset

TINY = [
    "steps=6",
    "batch_size=8",
    "log_every=3",
    "checkpoint.every=3",
    "eval.contexts=1",
    "eval.episodes_per_context=1",
    "logger.progress=none",
    "logger.tensorboard=false",
]
TINY_DIFFUSION = [
    "policy.unet.down_dims=[8,16]",
    "policy.unet.step_embed_dim=8",
    "policy.unet.groups=4",
    "policy.diffusion.inference_steps=2",
]


def _main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """Run the verb's console entry in this process (as `robolearn-imitation-train ARGS`); its exit code."""
    from robolearn.imitation import train

    monkeypatch.setattr(sys, "argv", ["robolearn-imitation-train", *args])
    try:
        train.main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def write_bimodal_demos(out: Path, episodes: int = 4) -> Path:
    """A few expert demos of the bimodal task, written with robolearn.datasets.write_dataset."""
    from robolearn.imitation.tasks import get_task

    task = get_task("bimodal")
    contexts = task.sample_contexts(episodes, "pretrain", 0)
    eps = []
    for i, ctx in enumerate(contexts):
        env = task.make_env(ctx)
        obs, _ = env.reset(seed=i)
        expert = task.expert(env, ctx, seed=i)
        observations, actions, rewards = [obs], [], []
        done, terminated, truncated = False, False, False
        while not done:
            a = expert(obs)
            obs, r, terminated, truncated, _ = env.step(a)
            observations.append(obs)
            actions.append(a)
            rewards.append(r)
            done = terminated or truncated
        steps = len(actions)
        term = np.zeros(steps, bool)
        trunc = np.zeros(steps, bool)
        term[-1], trunc[-1] = bool(terminated), not bool(terminated)
        eps.append(
            Episode(
                observations=np.asarray(observations, np.float32),
                actions=np.asarray(actions, np.float32),
                rewards=np.asarray(rewards, np.float32),
                terminations=term,
                truncations=trunc,
                infos={"context": np.repeat(ctx[None], steps + 1, axis=0).astype(np.float32)},
            )
        )
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
    write_dataset(
        out,
        eps,
        dataset_id="robolearn/bimodal-test-v0",
        observation_space=obs_space,
        action_space=act_space,
        provenance={"task": "bimodal", "split": "pretrain", "context_dim": 2, "pixels": False},
    )
    return out


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bimodal_demos(tmp_path_factory.mktemp("demos") / "bimodal")


@pytest.fixture(scope="module")
def diffusion_run(demos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "diffusion"
    with pytest.MonkeyPatch.context() as mp:
        assert _main([f"data={demos}", *TINY, *TINY_DIFFUSION, f"hydra.run.dir={run}"], mp) == 0
    return run


def test_diffusion_run_writes_a_report_ready_run_directory(diffusion_run: Path) -> None:
    summary = json.loads((diffusion_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 6
    assert np.isfinite(summary["eval/mean_return"]) and summary["eval/episodes"] == 1
    assert len(summary["eval/returns"]) == 1 and 0.0 <= summary["eval/success_rate"] <= 1.0
    assert summary["train/samples_per_s"] > 0
    config = OmegaConf.load(diffusion_run / "config.yaml")
    assert config.method.name == "diffusion_unet" and config.env.id == "bimodal" and config.seed == 0
    assert config.eval.split == "pretrain"  # filled from the dataset's provenance
    lines = (diffusion_run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [3, 6]
    from robolearn.imitation.diffusion.policy import DiffusionPolicy, load_policy

    assert isinstance(load_policy(diffusion_run), DiffusionPolicy)


def test_resume_extends_a_finished_run(
    diffusion_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(diffusion_run, run)
    assert _main([f"resume={run}", "steps=9"], monkeypatch) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 9 and summary["resumes"] == 1
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9]


def test_bc_run_on_the_same_data(demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "bc"
    assert (
        _main(
            [f"data={demos}", "policy=bc", "policy.bc.hidden=[16]", *TINY, f"hydra.run.dir={run}"],
            monkeypatch,
        )
        == 0
    )
    summary = json.loads((run / "summary.json").read_text())
    assert np.isfinite(summary["eval/mean_return"])
    assert OmegaConf.load(run / "config.yaml").method.name == "bc_mlp"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["policy=gan"], "policy=gan is not a known policy"),
        (["policy.denoiser=rnn"], "policy.denoiser=rnn is not known"),
        (["policy.action_horizon=20"], "policy.action_horizon=20 exceeds policy.pred_horizon=16"),
        (["policy.pred_horizon=9"], "policy.pred_horizon=9 must divide by 2"),
        (["steps=0"], "steps=0 is out of range"),
        (["task=reacher"], "task=reacher differs from data="),
    ],
)
def test_bad_input_is_one_line_before_any_work(
    demos: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    run = tmp_path / "run"
    assert _main([f"data={demos}", *TINY, *TINY_DIFFUSION, *args, f"hydra.run.dir={run}"], monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not run.exists()


def test_missing_data_and_state_only_dicts_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(["logger.progress=none"], monkeypatch) == 2
    assert "data= is missing" in capsys.readouterr().err
    # A Dict observation without pixels: nothing for the image encoder to read.
    obs_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)})
    steps = 5
    ep = Episode(
        observations={"state": np.zeros((steps + 1, 2), np.float32)},
        actions=np.zeros((steps, 2), np.float32),
        rewards=np.zeros(steps, np.float32),
        terminations=np.zeros(steps, bool),
        truncations=np.r_[np.zeros(steps - 1, bool), True],
    )
    data = write_dataset(
        tmp_path / "dict",
        [ep],
        dataset_id="robolearn/dict-test-v0",
        observation_space=obs_space,
        action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
    )
    run = tmp_path / "run"
    assert _main([f"data={data.parent}", *TINY, "eval.contexts=0", f"hydra.run.dir={run}"], monkeypatch) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Dict observations without pixels" in err[0], err
    assert not run.exists()


def test_help_names_the_keys(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["--help"], monkeypatch) == 0
    text = capsys.readouterr().out
    for key in ("policy", "data", "policy.denoiser", "steps", "resume", "eval.<key>"):
        assert f"  {key}" in text


def test_a_run_resumed_from_its_midway_checkpoint_ends_where_the_whole_run_did(
    diffusion_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import torch

    # Turn a copy of the finished run back into one stopped after its step-3 checkpoint.
    run = tmp_path / "cut"
    shutil.copytree(diffusion_run, run)
    (run / "summary.json").unlink()
    (run / "policy.pt").unlink()
    shutil.rmtree(run / "checkpoints" / "step_000000000006")
    (run / "checkpoints" / "latest.json").write_text(json.dumps({"name": "step_000000000003", "step": 3}))
    assert _main([f"resume={run}"], monkeypatch) == 0
    whole = torch.load(diffusion_run / "policy.pt", weights_only=False)["state_dict"]
    resumed = torch.load(run / "policy.pt", weights_only=False)["state_dict"]
    assert whole.keys() == resumed.keys()
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    a = json.loads((diffusion_run / "summary.json").read_text())
    b = json.loads((run / "summary.json").read_text())
    assert a["eval/returns"] == b["eval/returns"] and b["resumes"] == 1


# -- pixel observations (pointmass_pixels: Dict {"pixels": uint8 (64, 64, 3), "state": (4,)}) ----------
# A small image encoder (robolearn.imitation.encoders.EncoderConfig keys) keeps these steps fast on CPU.
TINY_ENCODER = (
    "+policy.encoder={latent_dim:8,conv_channels:[4,4],conv_strides:[2,2],keypoints:4,state_hidden:[8]}"
)


@pytest.fixture(scope="module")
def pixel_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two expert demos of pointmass_pixels, written by robolearn.imitation.collect."""
    from robolearn.config.validate import compose_config
    from robolearn.imitation.collect import CONFIG, collect

    out = tmp_path_factory.mktemp("pixel_demos") / "pm"
    collect(compose_config(CONFIG, ["task=pointmass_pixels", "demos=2", "seed=0", f"out={out}"]))
    return out


@pytest.mark.parametrize("policy", ["bc", "diffusion"])
def test_pixel_demos_train_end_to_end_and_round_trip(
    pixel_demos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    from robolearn.imitation.diffusion.policy import RecedingHorizonActor, load_policy, save_policy
    from robolearn.imitation.tasks import get_task

    run = tmp_path / policy
    extra = ["policy.bc.hidden=[16]"] if policy == "bc" else TINY_DIFFUSION
    args = [f"data={pixel_demos}", f"policy={policy}", *extra, TINY_ENCODER, *TINY, f"hydra.run.dir={run}"]
    assert _main(args, monkeypatch) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 6
    assert np.isfinite(summary["eval/mean_return"]) and summary["eval/episodes"] == 1
    assert OmegaConf.load(run / "config.yaml").env.id == "pointmass_pixels"
    loaded = load_policy(run)
    assert loaded.obs_shapes == {"pixels": (64, 64, 3), "state": (4,)}
    assert any(k.startswith("encoder.pixels.conv") for k in loaded.state_dict())
    # Save/load round trip: the same seed gives the same actions on the same observations.
    again = load_policy(save_policy(loaded, tmp_path / "again.pt"))
    task = get_task("pointmass_pixels")
    env = task.make_env(task.sample_contexts(1, "pretrain", 0)[0])
    obs, _ = env.reset(seed=3)
    a, b = RecedingHorizonActor(loaded, seed=5), RecedingHorizonActor(again, seed=5)
    for _ in range(10):  # more than one chunk (action_horizon 8): the history path replans
        act_a, act_b = a(obs), b(obs)
        np.testing.assert_array_equal(act_a, act_b)
        obs, *_ = env.step(act_a)
    env.close()
    assert a.plans == 2 and np.all(np.abs(act_a) <= 1.0 + 1e-6)


def test_pixel_batches_are_gathered_as_uint8_from_one_copy_of_the_frames(pixel_demos: Path) -> None:
    import torch

    from robolearn.imitation.data import load_demos
    from robolearn.imitation.train import CONFIG_NAME, PixelWindows, Trainer, demo_windows
    from robolearn.imitation.verbs import compose_config

    demos = load_demos(pixel_demos)
    windows, act = demo_windows(demos, 2, 16)
    assert isinstance(windows, PixelWindows) and len(windows) == demos.num_steps == len(act)
    cfg = compose_config(
        CONFIG_NAME,
        [f"data={pixel_demos}", "policy=bc", "policy.bc.hidden=[16]", TINY_ENCODER, "batch_size=8"],
    )
    trainer = Trainer(cfg, windows, act, "cpu")
    assert trainer.frames is not None
    # One uint8 copy of the flat frames (T+1 per episode), not (N, To) float windows.
    assert trainer.frames["pixels"].dtype == torch.uint8
    assert tuple(trainer.frames["pixels"].shape) == demos.observations["pixels"].shape
    idx = torch.tensor([0, 1, 5, len(act) - 1])
    batch = trainer.batch_obs(idx)
    assert batch["pixels"].dtype == torch.uint8 and tuple(batch["pixels"].shape) == (4, 2, 64, 64, 3)
    # The gathered batch is exactly data.py's windows for those rows.
    ref_obs, ref_act = demos.windows(2, 16)
    np.testing.assert_array_equal(batch["pixels"].numpy(), ref_obs["pixels"][idx.numpy()])
    np.testing.assert_array_equal(batch["state"].numpy(), ref_obs["state"][idx.numpy()])
    np.testing.assert_array_equal(act[idx.numpy()], ref_act[idx.numpy()])
    loss = trainer.iterate()
    assert np.isfinite(loss) and trainer.step == 1
