"""Action-chunk policies over an observation history: a diffusion policy and MSE behaviour cloning.

Both read the last `obs_horizon` observations (To, default 2), predict `pred_horizon` actions (Tp,
default 16) starting at the current step, and execute the first `action_horizon` (Ta, default 8)
before planning again (receding horizon; Chi et al., "Diffusion Policy", RSS 2023, Sec. III-A and
their lowdim configs in real-stanford/diffusion_policy: n_obs_steps 2, horizon 16, n_action_steps 8).
Observations and actions are normalised to [-1, 1] by buffers saved in the policy's state dict.

Pixel observations (a Dict {"pixels": uint8 (H, W, 3), "state": (n,)}, `obs_shapes`) go through
robolearn.imitation.encoders.ObservationEncoder (conv stack + spatial softmax, fused with the
state), trained end to end with the denoiser as Diffusion Policy trains its ResNet (Sec. III-B);
the state is range-normalised first, as the state-only path does, and the pixels stay uint8 until
the encoder scales them.

    policy = build_policy(spec, obs_dim, action_dim); policy.fit_normalizers(obs, actions)
    loss = policy.loss(obs_hist, act_chunk, generator)          # training
    actor = RecedingHorizonActor(policy, seed=0); action = actor(obs)   # rollouts
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from robolearn.errors import UserError, require_extra
from robolearn.imitation.diffusion.networks import ConditionalUnet1D, TransformerDenoiser
from robolearn.imitation.diffusion.normalizer import RangeNormalizer

# A batch of observation histories: (B, To, obs_dim) floats, or for pixel observations a dict of
# "pixels" (B, To, H, W, 3) uint8 and "state" (B, To, n) float.
ObsBatch = torch.Tensor | dict[str, torch.Tensor]

POLICY_FILE = "policy.pt"
FORMAT_VERSION = 1
KINDS = ("diffusion", "bc")
DENOISERS = ("unet", "transformer")
SAMPLERS = ("ddim", "ddpm")


class ChunkPolicy(nn.Module):
    """What both policies share: horizons, normalisers and the observation encoding."""

    kind = "?"

    def __init__(
        self,
        spec: Mapping[str, Any],
        obs_dim: int,
        action_dim: int,
        obs_shapes: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.spec = dict(spec)
        self.obs_dim = int(obs_dim)  # the state part's size (pixel observations: their "state", or 0)
        self.action_dim = int(action_dim)
        self.obs_horizon = int(spec["obs_horizon"])
        self.pred_horizon = int(spec["pred_horizon"])
        self.action_horizon = int(spec["action_horizon"])
        self.obs_norm = RangeNormalizer(self.obs_dim)
        self.act_norm = RangeNormalizer(self.action_dim)
        self.obs_shapes = (
            None if obs_shapes is None else {k: tuple(int(d) for d in v) for k, v in obs_shapes.items()}
        )
        self.encoder: nn.Module | None = None
        if self.obs_shapes is None:
            # The condition is the normalised, flattened observation history (the paper's low-dim
            # "obs_as_global_cond" path).
            self.cond_dim = self.obs_horizon * self.obs_dim
        else:
            from robolearn.imitation.encoders import EncoderConfig, ObservationEncoder

            encoder_cfg = EncoderConfig.from_mapping(dict(spec.get("encoder") or {}))
            self.encoder = ObservationEncoder(_dict_space(self.obs_shapes), encoder_cfg)
            # One latent per frame of the history, concatenated (Diffusion Policy's image path).
            self.cond_dim = self.obs_horizon * encoder_cfg.latent_dim

    def fit_normalizers(self, observations: np.ndarray, actions: np.ndarray) -> None:
        """Set both normalisers' ranges from the training data (for pixel observations:
        `observations` is their state part)."""
        if self.obs_dim > 0:
            self.obs_norm.fit(observations)
        self.act_norm.fit(actions)

    def encode(self, obs_hist: ObsBatch) -> torch.Tensor:
        """(B, To, obs_dim) observations (or a dict of pixels and state histories) -> (B, cond_dim)."""
        if isinstance(obs_hist, dict):
            if self.encoder is None:
                raise UserError(
                    "this policy was trained on state observations; give it (B, To, obs_dim) arrays"
                )
            parts = {"pixels": obs_hist["pixels"]}
            if self.obs_dim > 0:
                parts["state"] = self.obs_norm.normalize(obs_hist["state"].float())
            return self.encoder(parts).flatten(1)
        return self.obs_norm.normalize(obs_hist).flatten(1)

    def loss(
        self, obs_hist: ObsBatch, act_chunk: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The training loss on a batch of (B, To, obs_dim) histories and (B, Tp, A) chunks."""
        raise NotImplementedError

    def predict_chunk(
        self, obs_hist: ObsBatch, generator: torch.Generator | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """(B, To, obs_dim) -> (B, Tp, A) actions in data units."""
        raise NotImplementedError


class BCPolicy(ChunkPolicy):
    """MSE behaviour cloning of the whole chunk: an MLP from the history to Tp actions. Its mean
    regression averages the modes of multimodal demonstrations (the paper's Sec. IV comparison)."""

    kind = "bc"

    def __init__(
        self,
        spec: Mapping[str, Any],
        obs_dim: int,
        action_dim: int,
        obs_shapes: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, obs_dim, action_dim, obs_shapes)
        layers: list[nn.Module] = []
        width = self.cond_dim
        for hidden in spec["bc"]["hidden"]:
            layers += [nn.Linear(width, int(hidden)), nn.Mish()]
            width = int(hidden)
        layers.append(nn.Linear(width, self.pred_horizon * self.action_dim))
        self.net = nn.Sequential(*layers)

    def loss(
        self, obs_hist: ObsBatch, act_chunk: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Mean squared error on normalised actions."""
        return nn.functional.mse_loss(self._regress(obs_hist), self.act_norm.normalize(act_chunk))

    @torch.no_grad()
    def predict_chunk(
        self, obs_hist: ObsBatch, generator: torch.Generator | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """The regressed chunk (deterministic; `generator` and `steps` are unused)."""
        return self.act_norm.unnormalize(self._regress(obs_hist).clamp(-1.0, 1.0))

    def _regress(self, obs_hist: ObsBatch) -> torch.Tensor:
        """(B, Tp, A) normalised actions regressed from the encoded history."""
        return self.net(self.encode(obs_hist)).view(-1, self.pred_horizon, self.action_dim)


class DiffusionPolicy(ChunkPolicy):
    """DDPM on normalised action chunks conditioned on the observation history (epsilon prediction),
    trained with diffusers' DDPMScheduler and sampled with its DDIMScheduler (few steps) or DDPM."""

    kind = "diffusion"

    def __init__(
        self,
        spec: Mapping[str, Any],
        obs_dim: int,
        action_dim: int,
        obs_shapes: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(spec, obs_dim, action_dim, obs_shapes)
        require_extra("the diffusion policy", "diffusers")
        from diffusers import DDIMScheduler, DDPMScheduler

        d = spec["diffusion"]
        denoiser = str(spec["denoiser"])
        if denoiser == "unet":
            u = spec["unet"]
            self.denoiser: nn.Module = ConditionalUnet1D(
                action_dim,
                self.cond_dim,
                down_dims=[int(x) for x in u["down_dims"]],
                step_embed_dim=int(u["step_embed_dim"]),
                kernel_size=int(u["kernel_size"]),
                groups=int(u["groups"]),
            )
        elif denoiser == "transformer":
            t = spec["transformer"]
            self.denoiser = TransformerDenoiser(
                action_dim,
                self.cond_dim,
                self.pred_horizon,
                embed_dim=int(t["embed_dim"]),
                layers=int(t["layers"]),
                heads=int(t["heads"]),
                dropout=float(t["dropout"]),
                causal=bool(t["causal"]),
            )
        else:
            raise UserError(f"policy.denoiser={denoiser} is not known; choose one of {', '.join(DENOISERS)}")
        schedule = {
            "num_train_timesteps": int(d["train_steps"]),
            "beta_schedule": str(d["beta_schedule"]),
            "clip_sample": bool(d["clip_sample"]),
            "prediction_type": "epsilon",
        }
        # diffusers' schedulers are typed loosely (lazy imports): Any keeps mypy honest about that.
        self.train_scheduler: Any = DDPMScheduler(**schedule)
        self.sampler = str(d["sampler"])
        self.inference_steps = int(d["inference_steps"])
        self.infer_scheduler: Any = (
            DDIMScheduler(**schedule) if self.sampler == "ddim" else DDPMScheduler(**schedule)
        )

    def loss(
        self, obs_hist: ObsBatch, act_chunk: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Noise-prediction MSE at uniformly drawn diffusion steps (DDPM's simple loss)."""
        x0 = self.act_norm.normalize(act_chunk)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device)
        steps = torch.randint(
            0,
            self.train_scheduler.config.num_train_timesteps,
            (x0.shape[0],),
            generator=generator,
            device=x0.device,
        )
        noisy = self.train_scheduler.add_noise(x0, noise, steps)
        return nn.functional.mse_loss(self.denoiser(noisy, steps, self.encode(obs_hist)), noise)

    @torch.no_grad()
    def predict_chunk(
        self, obs_hist: ObsBatch, generator: torch.Generator | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """Denoise Gaussian noise into a chunk; the same generator state gives the same chunk."""
        cond = self.encode(obs_hist)
        scheduler = self.infer_scheduler
        scheduler.set_timesteps(int(steps or self.inference_steps))
        x = torch.randn(
            (cond.shape[0], self.pred_horizon, self.action_dim),
            generator=generator,
            device=cond.device,
        )
        for t in scheduler.timesteps:
            step = torch.full((x.shape[0],), int(t), dtype=torch.long, device=x.device)
            eps = self.denoiser(x, step, cond)
            x = scheduler.step(eps, int(t), x, generator=generator).prev_sample
        return self.act_norm.unnormalize(x.clamp(-1.0, 1.0))


def _dict_space(obs_shapes: Mapping[str, tuple[int, ...]]) -> Any:
    """The gymnasium Dict space ObservationEncoder reads, from {"pixels": (H, W, 3), "state": (n,)}."""
    from gymnasium import spaces

    parts: dict[str, spaces.Space] = {}
    if "pixels" in obs_shapes:
        parts["pixels"] = spaces.Box(0, 255, shape=obs_shapes["pixels"], dtype=np.uint8)
    if "state" in obs_shapes:
        parts["state"] = spaces.Box(-np.inf, np.inf, shape=obs_shapes["state"], dtype=np.float32)
    return spaces.Dict(parts)


def build_policy(
    spec: Mapping[str, Any],
    obs_dim: int,
    action_dim: int,
    obs_shapes: Mapping[str, Any] | None = None,
) -> ChunkPolicy:
    """The policy a config's `policy` node describes (`name`: diffusion | bc); `obs_shapes`
    ({"pixels": (H, W, 3), "state": (n,)}) for pixel observations, None for state vectors."""
    kind = str(spec["name"])
    if kind == "diffusion":
        return DiffusionPolicy(spec, obs_dim, action_dim, obs_shapes)
    if kind == "bc":
        return BCPolicy(spec, obs_dim, action_dim, obs_shapes)
    raise UserError(f"policy={kind} is not known; choose one of {', '.join(KINDS)}")


class ChunkPredictor(Protocol):
    """What RecedingHorizonActor drives: a ChunkPolicy, or the ONNX sampler (onnx_sampler.py)."""

    obs_horizon: int
    pred_horizon: int
    action_horizon: int

    def eval(self) -> Any:
        """Switch to inference mode; returns the predictor."""

    def predict_chunk(
        self, obs_hist: ObsBatch, generator: torch.Generator | None = None, steps: int | None = None
    ) -> torch.Tensor:
        """(B, To, obs_dim) -> (B, Tp, A) actions in data units."""


class RecedingHorizonActor:
    """A stateful obs -> action callable: keeps the last To observations (the first repeated at the
    start, as in training's padding), plans a chunk when its queue is empty and executes its first
    Ta actions. One actor per episode; `seed` fixes its sampling."""

    def __init__(self, policy: ChunkPredictor, seed: int = 0, action_horizon: int | None = None) -> None:
        self.policy: ChunkPredictor = policy.eval()
        self.action_horizon = int(action_horizon or policy.action_horizon)
        if not 1 <= self.action_horizon <= policy.pred_horizon:
            raise UserError(
                f"action_horizon={self.action_horizon} must be between 1 and pred_horizon={policy.pred_horizon}"
            )
        self.generator = torch.Generator().manual_seed(int(seed))
        self.history: deque[Any] = deque(maxlen=policy.obs_horizon)
        self.queue: deque[np.ndarray] = deque()
        self.plans = 0

    def __call__(self, obs: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        """The next action for observation `obs` (an array, or a dict of pixels and state)."""
        o: Any
        if isinstance(obs, Mapping):
            # Pixels stay uint8 (the encoder scales them), the state is float32 as in training.
            o = {
                k: np.asarray(v) if k == "pixels" else np.asarray(v, dtype=np.float32) for k, v in obs.items()
            }
        else:
            o = np.asarray(obs, dtype=np.float32).reshape(-1)
        if not self.history:
            self.history.extend([o] * self.policy.obs_horizon)
        else:
            self.history.append(o)
        if not self.queue:
            hist: ObsBatch
            if isinstance(o, dict):
                hist = {k: torch.from_numpy(np.stack([h[k] for h in self.history]))[None] for k in o}
            else:
                hist = torch.from_numpy(np.stack(self.history))[None]
            with torch.inference_mode():
                chunk = self.policy.predict_chunk(hist, self.generator)[0].numpy()
            self.queue.extend(chunk[: self.action_horizon])
            self.plans += 1
        return self.queue.popleft()


def save_policy(policy: ChunkPolicy, path: Path | str) -> Path:
    """Write the policy (spec, sizes, weights, normalisers) atomically to `path` (a policy.pt file)."""
    from robolearn.utils.io import atomic_save_with

    payload = {
        "format_version": FORMAT_VERSION,
        "spec": policy.spec,
        "obs_dim": policy.obs_dim,
        "action_dim": policy.action_dim,
        "obs_shapes": policy.obs_shapes,
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_with(out, lambda p: torch.save(payload, p))
    return out


def load_policy(path: Path | str) -> ChunkPolicy:
    """Read a policy written by save_policy (a policy.pt file or a run directory holding one)."""
    import pickle

    p = Path(path)
    if p.is_dir():
        p = p / POLICY_FILE
    if not p.is_file():
        raise UserError(f"{p} does not exist; give a policy.pt or a finished imitation.train run directory")
    try:
        saved = torch.load(p, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(f"{p} cannot be read ({exc}); re-run robolearn.imitation.train") from None
    if not isinstance(saved, dict) or saved.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{p} is not a robolearn imitation policy (format {FORMAT_VERSION} expected)")
    policy = build_policy(
        saved["spec"], int(saved["obs_dim"]), int(saved["action_dim"]), saved.get("obs_shapes")
    )
    policy.load_state_dict(saved["state_dict"])
    return policy.eval()
