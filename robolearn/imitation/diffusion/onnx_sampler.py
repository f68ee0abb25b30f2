"""DDIM/DDPM sampling with the denoiser in ONNX Runtime: the deploy-side path (contract 3 ships ONNX).

Eager torch spends most of a batch-1 denoiser call in per-operator overhead (~10 us each, hundreds
of operators); ONNX Runtime runs the same graph with a fraction of it. Two modes:
  * `fused=False`: one session call per denoising step, the step itself by diffusers' DDIMScheduler
    (or DDPMScheduler): exactly the eager loop with the denoiser swapped;
  * `fused=True` (DDIM only): the whole deterministic DDIM loop (eta = 0) in one graph, its
    coefficients read from the policy's DDIMScheduler (alphas_cumprod at its timesteps), so a chunk
    is one session call. A test checks it against the diffusers loop.
The initial noise comes from the caller's torch.Generator in both, so a seed gives the eager chunk
up to float rounding.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.errors import UserError, require_extra
from robolearn.imitation.diffusion.policy import DiffusionPolicy, ObsBatch


def export_denoiser(policy: DiffusionPolicy) -> bytes:
    """The policy's denoiser as an ONNX model (inputs: sample (B,Tp,A), step (B,) int64, cond (B,C))."""
    require_extra("ONNX export of the diffusion policy", "onnx")
    x = torch.zeros(1, policy.pred_horizon, policy.action_dim)
    step = torch.zeros(1, dtype=torch.long)
    cond = torch.zeros(1, policy.cond_dim)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        # The shape checks in forward() are constants for a traced graph, which is what we want.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        path = Path(tmp) / "denoiser.onnx"
        torch.onnx.export(
            policy.denoiser.eval(),
            (x, step, cond),
            str(path),
            input_names=["sample", "step", "cond"],
            output_names=["eps"],
            dynamic_axes={
                "sample": {0: "batch"},
                "step": {0: "batch"},
                "cond": {0: "batch"},
                "eps": {0: "batch"},
            },
            dynamo=False,
        )
        return path.read_bytes()


class FusedDDIM(torch.nn.Module):
    """The deterministic DDIM loop (eta = 0, epsilon prediction, x0 clipped as the scheduler does)
    over a fixed list of timesteps, as one module to trace: (noise, cond) -> normalised chunk."""

    def __init__(self, policy: DiffusionPolicy, steps: int) -> None:
        super().__init__()
        scheduler: Any = policy.infer_scheduler
        if scheduler.config.prediction_type != "epsilon" or scheduler.config.get("thresholding", False):
            raise UserError("the fused DDIM graph needs epsilon prediction without thresholding")
        scheduler.set_timesteps(int(steps))
        self.denoiser = policy.denoiser
        self.clip = float(scheduler.config.clip_sample_range) if scheduler.config.clip_sample else None
        stride = scheduler.config.num_train_timesteps // scheduler.num_inference_steps
        alphas = scheduler.alphas_cumprod
        self.timesteps = [int(t) for t in scheduler.timesteps]
        self.coefficients: list[tuple[float, float]] = []
        for t in self.timesteps:
            prev = t - stride
            a_t = float(alphas[t])
            a_prev = float(alphas[prev]) if prev >= 0 else float(scheduler.final_alpha_cumprod)
            self.coefficients.append((a_t, a_prev))

    def forward(self, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, Tp, A) initial noise, (B, C) condition -> (B, Tp, A) denoised chunk in [-1, 1]."""
        x = noise
        for t, (a_t, a_prev) in zip(self.timesteps, self.coefficients, strict=True):
            step = torch.full((x.shape[0],), t, dtype=torch.long)
            eps = self.denoiser(x, step, cond)
            x0 = (x - (1.0 - a_t) ** 0.5 * eps) / a_t**0.5
            if self.clip is not None:
                x0 = x0.clamp(-self.clip, self.clip)
            x = a_prev**0.5 * x0 + (1.0 - a_prev) ** 0.5 * eps
        return x


def export_fused_ddim(policy: DiffusionPolicy, steps: int) -> bytes:
    """The whole DDIM loop as an ONNX model (inputs: noise (B,Tp,A), cond (B,C); output: chunk)."""
    require_extra("ONNX export of the diffusion policy", "onnx")
    module = FusedDDIM(policy, steps).eval()
    noise = torch.zeros(1, policy.pred_horizon, policy.action_dim)
    cond = torch.zeros(1, policy.cond_dim)
    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        path = Path(tmp) / "ddim.onnx"
        torch.onnx.export(
            module,
            (noise, cond),
            str(path),
            input_names=["noise", "cond"],
            output_names=["chunk"],
            dynamic_axes={"noise": {0: "batch"}, "cond": {0: "batch"}, "chunk": {0: "batch"}},
            dynamo=False,
        )
        return path.read_bytes()


class OnnxChunkSampler:
    """predict_chunk with the denoiser in an ONNX Runtime session (`threads` intra-op threads);
    `fused=True` runs the whole DDIM loop in one session call."""

    def __init__(self, policy: DiffusionPolicy, threads: int = 1, fused: bool = False) -> None:
        if not isinstance(policy, DiffusionPolicy):
            raise UserError(f"ONNX sampling needs a diffusion policy, not {type(policy).__name__}")
        require_extra("ONNX sampling of the diffusion policy", "onnxruntime")
        import onnxruntime as ort

        if fused and policy.sampler != "ddim":
            raise UserError(
                f"fused ONNX sampling runs DDIM; this policy samples with policy.diffusion.sampler={policy.sampler}"
            )
        self.policy = policy.eval()
        self.fused = bool(fused)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        model = export_fused_ddim(policy, policy.inference_steps) if fused else export_denoiser(policy)
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.scheduler: Any = policy.infer_scheduler
        # Attributes RecedingHorizonActor reads.
        self.obs_horizon = policy.obs_horizon
        self.pred_horizon = policy.pred_horizon
        self.action_horizon = policy.action_horizon

    def eval(self) -> OnnxChunkSampler:
        """For RecedingHorizonActor (already in eval mode)."""
        return self

    @torch.no_grad()
    def predict_chunk(
        self, obs_hist: ObsBatch, generator: torch.Generator | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """(B, To, obs_dim) -> (B, Tp, A) actions, as DiffusionPolicy.predict_chunk."""
        p = self.policy
        cond = p.encode(obs_hist).numpy()
        x = torch.randn((cond.shape[0], p.pred_horizon, p.action_dim), generator=generator)
        if self.fused:
            if steps is not None and int(steps) != p.inference_steps:
                raise UserError(f"the fused DDIM graph was built for {p.inference_steps} steps, not {steps}")
            (chunk,) = self.session.run(None, {"noise": x.numpy(), "cond": cond})
            return p.act_norm.unnormalize(torch.from_numpy(chunk).clamp(-1.0, 1.0))
        self.scheduler.set_timesteps(int(steps or p.inference_steps))
        batch = np.ones(x.shape[0], dtype=np.int64)
        for t in self.scheduler.timesteps:
            (eps,) = self.session.run(None, {"sample": x.numpy(), "step": batch * int(t), "cond": cond})
            x = self.scheduler.step(torch.from_numpy(eps), int(t), x, generator=generator).prev_sample
        return p.act_norm.unnormalize(x.clamp(-1.0, 1.0))
