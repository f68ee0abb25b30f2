"""DDIM/DDPM sampling with the denoiser in ONNX Runtime: the deploy-side path (contract 3 ships ONNX).

Eager torch spends most of a batch-1 denoiser call in per-operator overhead (~10 us each, hundreds
of operators); ONNX Runtime runs the same graph with a fraction of it. The sampling loop, the noise
(drawn from the same torch.Generator) and the scheduler (diffusers' DDIMScheduler) are the eager
path's, so a seed gives the same chunk up to float rounding.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.errors import UserError, require_extra
from robolearn.imitation.diffusion.policy import DiffusionPolicy


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


class OnnxChunkSampler:
    """predict_chunk with the denoiser in an ONNX Runtime session (`threads` intra-op threads)."""

    def __init__(self, policy: DiffusionPolicy, threads: int = 1) -> None:
        if not isinstance(policy, DiffusionPolicy):
            raise UserError(f"ONNX sampling needs a diffusion policy, not {type(policy).__name__}")
        require_extra("ONNX sampling of the diffusion policy", "onnxruntime")
        import onnxruntime as ort

        self.policy = policy.eval()
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            export_denoiser(policy), options, providers=["CPUExecutionProvider"]
        )
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
        self, obs_hist: torch.Tensor, generator: torch.Generator | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """(B, To, obs_dim) -> (B, Tp, A) actions, as DiffusionPolicy.predict_chunk."""
        p = self.policy
        cond = p.encode(obs_hist).numpy()
        self.scheduler.set_timesteps(int(steps or p.inference_steps))
        x = torch.randn((obs_hist.shape[0], p.pred_horizon, p.action_dim), generator=generator)
        batch = np.ones(x.shape[0], dtype=np.int64)
        for t in self.scheduler.timesteps:
            (eps,) = self.session.run(None, {"sample": x.numpy(), "step": batch * int(t), "cond": cond})
            x = self.scheduler.step(torch.from_numpy(eps), int(t), x, generator=generator).prev_sample
        return p.act_norm.unnormalize(x.clamp(-1.0, 1.0))
