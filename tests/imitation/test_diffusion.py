"""Diffusion policy and MSE-BC on action chunks (robolearn/imitation/diffusion): multimodality, DDIM vs DDPM,
seeded sampling, receding-horizon execution, save/load."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from robolearn.errors import UserError
from robolearn.imitation.diffusion.networks import ConditionalUnet1D, TransformerDenoiser
from robolearn.imitation.diffusion.policy import (
    ChunkPolicy,
    RecedingHorizonActor,
    build_policy,
    load_policy,
    save_policy,
)

OBS_DIM, ACT_DIM, TO, TP, TA = 3, 2, 2, 8, 4

SPEC: dict[str, Any] = {
    "name": "diffusion",
    "obs_horizon": TO,
    "pred_horizon": TP,
    "action_horizon": TA,
    "denoiser": "transformer",
    "unet": {"down_dims": [16, 32], "step_embed_dim": 16, "kernel_size": 3, "groups": 4},
    "transformer": {"embed_dim": 32, "layers": 1, "heads": 2, "dropout": 0.0, "causal": True},
    "diffusion": {
        "train_steps": 100,
        "beta_schedule": "squaredcos_cap_v2",
        "clip_sample": True,
        "sampler": "ddim",
        "inference_steps": 10,
    },
    "bc": {"hidden": [64, 64]},
}


def two_mode_data(n: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The same (noisy) observation for every sample; the whole chunk is +1 or -1 with equal chance."""
    rng = np.random.default_rng(seed)
    obs = (0.1 * rng.standard_normal((n, TO, OBS_DIM))).astype(np.float32)
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0).astype(np.float32)
    act = np.broadcast_to(sign[:, None, None], (n, TP, ACT_DIM)).copy()
    return obs, act


def fit(kind: str, denoiser: str = "transformer", steps: int = 200, seed: int = 0) -> ChunkPolicy:
    """A policy trained on the two-mode data (a couple of seconds on one core)."""
    torch.manual_seed(seed)
    obs, act = two_mode_data()
    policy = build_policy({**SPEC, "name": kind, "denoiser": denoiser}, OBS_DIM, ACT_DIM)
    policy.fit_normalizers(obs, act)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    o, a = torch.from_numpy(obs), torch.from_numpy(act)
    for _ in range(steps):
        idx = torch.randint(0, len(o), (64,), generator=gen)
        loss = policy.loss(o[idx], a[idx], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return policy.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    # Tiny networks: extra threads only add contention on a loaded machine.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def diffusion() -> ChunkPolicy:
    return fit("diffusion")


@pytest.fixture(scope="module")
def bc() -> ChunkPolicy:
    return fit("bc")


def chunk_means(policy: ChunkPolicy, n: int = 200, seed: int = 1, sampler: str | None = None) -> np.ndarray:
    obs, _ = two_mode_data(n, seed=5)
    if sampler is not None:
        policy = copy.deepcopy(policy)
        from diffusers import DDIMScheduler, DDPMScheduler

        cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
        policy.infer_scheduler = cls.from_config(policy.train_scheduler.config)  # type: ignore[union-attr]
    steps = 100 if sampler == "ddpm" else None
    chunks = policy.predict_chunk(torch.from_numpy(obs), torch.Generator().manual_seed(seed), steps=steps)
    return chunks.mean(dim=(1, 2)).numpy()


def test_diffusion_reproduces_both_modes_where_mse_bc_averages_them(
    diffusion: ChunkPolicy, bc: ChunkPolicy
) -> None:
    d = chunk_means(diffusion)
    near_plus, near_minus = float(np.mean(d > 0.7)), float(np.mean(d < -0.7))
    assert near_plus > 0.25 and near_minus > 0.25, (near_plus, near_minus)
    assert near_plus + near_minus > 0.6
    b = chunk_means(bc)
    # Mean regression lands between the modes: never near either.
    assert float(np.mean(np.abs(b) > 0.7)) == 0.0
    assert float(np.mean(np.abs(b))) < 0.3


def test_ddim_with_few_steps_matches_ddpm_moments(diffusion: ChunkPolicy) -> None:
    ddim = chunk_means(diffusion, sampler="ddim")
    ddpm = chunk_means(diffusion, sampler="ddpm")
    assert abs(float(np.mean(ddim > 0)) - float(np.mean(ddpm > 0))) < 0.15
    assert abs(float(np.mean(np.abs(ddim))) - float(np.mean(np.abs(ddpm)))) < 0.15
    assert abs(float(np.mean(ddim)) - float(np.mean(ddpm))) < 0.2


def test_same_seed_gives_identical_samples_and_another_seed_differs(diffusion: ChunkPolicy) -> None:
    obs = torch.from_numpy(two_mode_data(16, seed=3)[0])
    a = diffusion.predict_chunk(obs, torch.Generator().manual_seed(7))
    b = diffusion.predict_chunk(obs, torch.Generator().manual_seed(7))
    c = diffusion.predict_chunk(obs, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # DDPM draws fresh noise at every step: the generator must drive that noise too.
    ddpm = copy.deepcopy(diffusion)
    ddpm.infer_scheduler = type(ddpm.train_scheduler).from_config(ddpm.train_scheduler.config)  # type: ignore[union-attr]
    x = ddpm.predict_chunk(obs, torch.Generator().manual_seed(7), steps=20)
    y = ddpm.predict_chunk(obs, torch.Generator().manual_seed(7), steps=20)
    assert torch.equal(x, y)


def test_receding_horizon_executes_ta_of_tp_then_replans(diffusion: ChunkPolicy) -> None:
    calls: list[torch.Tensor] = []
    original = diffusion.predict_chunk

    def spy(obs_hist: torch.Tensor, generator: Any = None, steps: Any = None) -> torch.Tensor:
        calls.append(obs_hist.clone())
        return original(obs_hist, generator, steps)

    policy = copy.deepcopy(diffusion)
    policy.predict_chunk = spy  # type: ignore[method-assign, assignment]
    actor = RecedingHorizonActor(policy, seed=0)
    reference = copy.deepcopy(diffusion)
    observations = [np.full(OBS_DIM, 0.01 * i, np.float32) for i in range(2 * TA)]
    actions = [actor(o) for o in observations]
    assert actor.plans == 2 and len(calls) == 2
    # The first plan saw the first observation twice (history padded as in training), the second
    # plan the two observations before it.
    assert torch.equal(calls[0][0, 0], calls[0][0, 1])
    assert torch.allclose(calls[1][0], torch.from_numpy(np.stack(observations[TA - 1 : TA + 1])))
    # Executed actions are the first Ta of each planned chunk, in order.
    gen = torch.Generator().manual_seed(0)
    first = reference.predict_chunk(calls[0], gen)[0].numpy()
    np.testing.assert_allclose(np.stack(actions[:TA]), first[:TA], rtol=1e-5, atol=1e-6)
    assert actions[0].shape == (ACT_DIM,)
    with pytest.raises(UserError, match="action_horizon=9"):
        RecedingHorizonActor(diffusion, action_horizon=TP + 1)


def test_save_load_round_trip_gives_the_same_samples(
    diffusion: ChunkPolicy, bc: ChunkPolicy, tmp_path: Path
) -> None:
    obs = torch.from_numpy(two_mode_data(8, seed=4)[0])
    for policy in (diffusion, bc):
        path = save_policy(policy, tmp_path / f"{policy.kind}.pt")
        loaded = load_policy(path)
        assert type(loaded) is type(policy)
        torch.testing.assert_close(loaded.act_norm.half_range, policy.act_norm.half_range)
        a = policy.predict_chunk(obs, torch.Generator().manual_seed(3))
        b = loaded.predict_chunk(obs, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)
    with pytest.raises(UserError, match="does not exist"):
        load_policy(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="cannot be read"):
        load_policy(tmp_path / "junk.pt")


def test_normalisation_maps_the_data_range_to_unit_interval() -> None:
    obs, act = two_mode_data()
    act = act * 3.0 + 1.0  # range [-2, 4]
    policy = build_policy({**SPEC, "name": "bc"}, OBS_DIM, ACT_DIM)
    policy.fit_normalizers(obs, act)
    n = policy.act_norm.normalize(torch.from_numpy(act))
    assert float(n.min()) == pytest.approx(-1.0) and float(n.max()) == pytest.approx(1.0)
    torch.testing.assert_close(policy.act_norm.unnormalize(n), torch.from_numpy(act))
    # A constant coordinate is centred, not divided by a zero range.
    const = np.ones((10, 2), np.float32)
    policy.obs_norm.fit(np.concatenate([const, const[:, :1]], axis=1))
    assert torch.isfinite(policy.obs_norm.normalize(torch.zeros(OBS_DIM))).all()


def test_unet_and_transformer_keep_the_chunk_shape_and_unet_checks_length() -> None:
    x, t, c = torch.randn(5, TP, ACT_DIM), torch.randint(0, 100, (5,)), torch.randn(5, 6)
    unet = ConditionalUnet1D(ACT_DIM, 6, down_dims=[16, 32, 64], step_embed_dim=16, kernel_size=3, groups=4)
    assert unet(x, t, c).shape == x.shape
    # FiLM: the condition changes the output.
    assert not torch.allclose(unet(x, t, c), unet(x, t, c + 1.0))
    with pytest.raises(ValueError, match="divide by 4"):
        unet(torch.randn(2, 6, ACT_DIM), t[:2], c[:2])
    tr = TransformerDenoiser(ACT_DIM, 6, TP, embed_dim=16, layers=1, heads=2)
    assert tr(x, t, c).shape == x.shape


def test_unet_denoiser_loss_falls() -> None:
    obs, act = two_mode_data(256)
    torch.manual_seed(0)
    policy = build_policy({**SPEC, "denoiser": "unet"}, OBS_DIM, ACT_DIM)
    policy.fit_normalizers(obs, act)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    o, a = torch.from_numpy(obs), torch.from_numpy(act)
    losses = []
    for _ in range(60):
        idx = torch.randint(0, len(o), (32,), generator=gen)
        loss = policy.loss(o[idx], a[idx], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_unknown_policy_or_denoiser_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match="policy=gan"):
        build_policy({**SPEC, "name": "gan"}, OBS_DIM, ACT_DIM)
    with pytest.raises(UserError, match=r"policy\.denoiser=rnn"):
        build_policy({**SPEC, "denoiser": "rnn"}, OBS_DIM, ACT_DIM)


@pytest.mark.parametrize("denoiser", ["unet", "transformer"])
def test_onnx_sampler_gives_the_eager_chunk_for_the_same_seed(denoiser: str) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from robolearn.imitation.diffusion.onnx_sampler import OnnxChunkSampler
    from robolearn.imitation.diffusion.policy import DiffusionPolicy

    obs, act = two_mode_data(64)
    # Three DDIM steps keep the fused graph (the denoiser unrolled per step) quick to export.
    spec = {**SPEC, "denoiser": denoiser, "diffusion": {**SPEC["diffusion"], "inference_steps": 3}}
    policy = build_policy(spec, OBS_DIM, ACT_DIM)
    assert isinstance(policy, DiffusionPolicy)
    policy.fit_normalizers(obs, act)
    policy.eval()
    sampler = OnnxChunkSampler(policy)
    hist = torch.from_numpy(obs[:3])
    eager = policy.predict_chunk(hist, torch.Generator().manual_seed(2))
    onnx = sampler.predict_chunk(hist, torch.Generator().manual_seed(2))
    torch.testing.assert_close(onnx, eager, atol=1e-4, rtol=1e-4)
    fused = OnnxChunkSampler(policy, fused=True).predict_chunk(hist, torch.Generator().manual_seed(2))
    torch.testing.assert_close(fused, eager, atol=1e-4, rtol=1e-4)
    actor = RecedingHorizonActor(sampler, seed=0)
    assert actor(obs[0, 0]).shape == (ACT_DIM,)
    with pytest.raises(UserError, match="needs a diffusion policy"):
        OnnxChunkSampler(build_policy({**SPEC, "name": "bc"}, OBS_DIM, ACT_DIM))  # type: ignore[arg-type]


# -- pixel observations: Dict {"pixels": uint8 (H, W, 3), "state": (n,)} through ObservationEncoder ------
PIXEL_SHAPES = {"pixels": (32, 32, 3), "state": (4,)}
TINY_ENCODER: dict[str, Any] = {
    "latent_dim": 8,
    "conv_channels": [4, 4],
    "conv_strides": [2, 2],
    "keypoints": 4,
    "state_hidden": [8],
}


def pixel_batch(n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """(n, To, ...) histories: random uint8 frames and float states."""
    g = torch.Generator().manual_seed(seed)
    return {
        "pixels": torch.randint(0, 256, (n, TO, *PIXEL_SHAPES["pixels"]), generator=g, dtype=torch.uint8),
        "state": torch.randn((n, TO, 4), generator=g),
    }


@pytest.mark.parametrize("kind", ["diffusion", "bc"])
def test_pixel_policy_trains_its_image_encoder_end_to_end(kind: str) -> None:
    policy = build_policy({**SPEC, "name": kind, "encoder": TINY_ENCODER}, 4, ACT_DIM, PIXEL_SHAPES)
    obs = pixel_batch(16)
    act = torch.rand((16, TP, ACT_DIM)) * 2 - 1
    policy.fit_normalizers(obs["state"].numpy(), act.numpy())
    assert policy.cond_dim == TO * TINY_ENCODER["latent_dim"]
    assert policy.encode(obs).shape == (16, policy.cond_dim)
    policy.loss(obs, act, torch.Generator().manual_seed(0)).backward()
    assert policy.encoder is not None
    # The gradient reaches the first conv layer: the encoder learns with the policy head.
    first_conv = policy.encoder.pixels.conv[0].weight  # type: ignore[union-attr, index]
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0
    # The state goes through the range normaliser fitted on the data, as in the state-only path.
    assert torch.allclose(policy.obs_norm.normalize(obs["state"]).abs().max(), torch.tensor(1.0))
    with pytest.raises(UserError, match="trained on state observations"):
        build_policy(SPEC, OBS_DIM, ACT_DIM).encode(obs)


def test_pixel_actor_repeats_the_first_frame_and_round_trips(tmp_path: Path) -> None:
    policy = build_policy({**SPEC, "encoder": TINY_ENCODER}, 4, ACT_DIM, PIXEL_SHAPES).eval()
    frame = {k: v[0, 0].numpy() for k, v in pixel_batch(1, seed=3).items()}
    actor = RecedingHorizonActor(policy, seed=7)
    first = actor(frame)
    # The first plan sees [o_0, o_0] (the history padded as training pads episode starts).
    hist = {k: torch.from_numpy(np.stack([v, v]))[None] for k, v in frame.items()}
    expected = policy.predict_chunk(hist, torch.Generator().manual_seed(7))[0, 0].numpy()
    np.testing.assert_array_equal(first, expected)
    loaded = load_policy(save_policy(policy, tmp_path / "pix.pt"))
    assert loaded.obs_shapes == PIXEL_SHAPES
    np.testing.assert_array_equal(RecedingHorizonActor(loaded, seed=7)(frame), first)


def test_onnx_sampler_takes_pixel_observations() -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from robolearn.imitation.diffusion.onnx_sampler import OnnxChunkSampler

    spec = {**SPEC, "encoder": TINY_ENCODER, "diffusion": {**SPEC["diffusion"], "inference_steps": 3}}
    policy = build_policy(spec, 4, ACT_DIM, PIXEL_SHAPES).eval()
    hist = pixel_batch(3, seed=1)
    eager = policy.predict_chunk(hist, torch.Generator().manual_seed(2))
    # The encoder runs in torch, the denoiser in ONNX Runtime.
    onnx = OnnxChunkSampler(policy).predict_chunk(hist, torch.Generator().manual_seed(2))  # type: ignore[arg-type]
    torch.testing.assert_close(onnx, eager, atol=1e-4, rtol=1e-4)
