"""Task-conditioned hypernetwork that generates every weight of a dynamics MLP (HyperCRL's core).

A learned embedding per task goes through a small MLP (the hypernetwork, weights `theta`) whose
output is reshaped into the weights and biases of the target dynamics MLP, which then runs
functionally on them (the core's `robolearn.mbrl.models.mlp_forward`, nn.Linear layout). Optionally the output is generated in chunks: a shared chunk
generator maps (task embedding, chunk embedding) to one slice of the flat weight vector, so the
output layer scales with the chunk size instead of the target size (von Oswald et al., "Continual
learning with hypernetworks", ICLR 2020, Sec. 3; Huang et al., IROS 2021, Sec. IV-B).

Sizes and initialisation follow the official HyperCRL code (rvl-lab-utoronto/HyperCRL):
hypercrl/tools/default_arg.py (`Hparams.add_hnet_hparams`, `add_chunked_hnet_hparams`) and
hypercrl/model/tools.py (`build_model_hnet`: Xavier-uniform matrices, zero biases, task and chunk
embeddings drawn from N(0, 1)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from robolearn.errors import UserError
from robolearn.mbrl.models import activation_fn, mlp_forward

# Hypernetwork hidden sizes paired with the target MLP's hidden sizes in the official code
# (hypercrl/tools/default_arg.py, Hparams.add_hnet_hparams).
OFFICIAL_HNET_HIDDEN: dict[tuple[int, ...], tuple[int, ...]] = {
    (32, 32): (16, 16),
    (100, 100): (40, 40),
    (200, 200): (50, 50),
    (256, 256): (128, 128),
    (200, 200, 200): (100, 100),
    (400, 400, 400): (100, 100),
    (200, 200, 200, 200): (256, 256),
}
# Chunked generation in the official code (Hparams.add_chunked_hnet_hparams):
# target hidden -> (chunk-generator hidden, chunk size, chunk-embedding size).
OFFICIAL_CHUNKING: dict[tuple[int, ...], tuple[tuple[int, ...], int, int]] = {
    (200, 200): ((20, 20), 2000, 20),
    (256, 256): ((5, 5), 12000, 40),
    (200, 200, 200, 200): ((25, 30), 4000, 20),
}
# Used when the target MLP's sizes are not in the official tables.
FALLBACK_HNET_HIDDEN = (50, 50)
FALLBACK_CHUNKING = ((20, 20), 2000, 20)


def mlp_shapes(in_dim: int, out_dim: int, hidden: Sequence[int]) -> list[tuple[int, ...]]:
    """Parameter shapes of an MLP in mlp_forward's (nn.Linear's) layout: [W1 (h1, in), b1 (h1,), ..., W_out, b_out]."""
    shapes: list[tuple[int, ...]] = []
    prev = in_dim
    for size in [*hidden, out_dim]:
        shapes += [(int(size), prev), (int(size),)]
        prev = int(size)
    return shapes


def pair_params(flat: Sequence[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[W1, b1, W2, b2, ...] -> [(W1, b1), (W2, b2), ...]."""
    return [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]


def default_hnet_hidden(target_hidden: Sequence[int]) -> tuple[int, ...]:
    """The official hypernetwork hidden sizes for a target MLP's hidden sizes (FALLBACK_HNET_HIDDEN otherwise)."""
    return OFFICIAL_HNET_HIDDEN.get(tuple(int(h) for h in target_hidden), FALLBACK_HNET_HIDDEN)


def default_chunking(target_hidden: Sequence[int]) -> tuple[tuple[int, ...], int, int]:
    """The official (chunk-generator hidden, chunk size, chunk-embedding size) for a target MLP."""
    return OFFICIAL_CHUNKING.get(tuple(int(h) for h in target_hidden), FALLBACK_CHUNKING)


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


class HyperNetwork(nn.Module):
    """Maps a task embedding to all weights of a target network (optionally chunk by chunk).

    `theta` (the hypernetwork's own weights, plus the chunk embeddings when chunked) is what the
    continual regulariser protects; the task embeddings are separate parameters, one per task.
    `forward` takes an explicit `theta` and a shift `delta` so the regulariser can evaluate
    h(e, theta + delta_theta).
    """

    def __init__(
        self,
        target_shapes: Sequence[Sequence[int]],
        num_tasks: int,
        emb_size: int = 10,
        hidden: Sequence[int] = (16, 16),
        activation: str = "relu",
        chunk_size: int | None = None,
        chunk_emb_size: int | None = None,
        emb_std: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if num_tasks < 1:
            raise UserError(f"num_tasks={num_tasks} must be >= 1")
        if emb_size < 1:
            raise UserError(f"emb_size={emb_size} must be >= 1")
        if any(int(h) < 1 for h in hidden):
            raise UserError(f"hypernetwork hidden sizes {list(hidden)} must all be >= 1")
        if chunk_size is not None and (chunk_size < 1 or not chunk_emb_size or chunk_emb_size < 1):
            raise UserError(
                f"chunk_size={chunk_size}, chunk_emb_size={chunk_emb_size}: both must be >= 1 for chunked generation"
            )
        self.target_shapes = [tuple(int(s) for s in shape) for shape in target_shapes]
        self.num_outputs = sum(_numel(s) for s in self.target_shapes)
        self.emb_size = int(emb_size)
        self.hidden = tuple(int(h) for h in hidden)
        self.activation = activation
        self._act = activation_fn(activation)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.num_chunks = 0 if chunk_size is None else -(-self.num_outputs // int(chunk_size))

        self.task_embs = nn.ParameterList(
            [
                nn.Parameter(torch.randn(self.emb_size, generator=generator) * emb_std)
                for _ in range(num_tasks)
            ]
        )
        in_dim = self.emb_size + (int(chunk_emb_size) if chunk_emb_size else 0)
        out_dim = self.num_outputs if self.chunk_size is None else self.chunk_size
        layers: list[nn.Parameter] = []
        for shape in mlp_shapes(in_dim, out_dim, self.hidden):
            layers.append(nn.Parameter(torch.zeros(shape)))
        # Weights are [out, in]; each row of the output layer generates one target value.
        with torch.no_grad():
            for weight in layers[0:-2:2]:
                nn.init.xavier_uniform_(weight, generator=generator)
            out_w = layers[-2]
            if self.chunk_size is None:
                # The official hypernetwork has one output head per target tensor; Xavier bounds
                # per head (fan_out = that tensor's size) keep the generated weights' scale alike.
                start = 0
                for shape in self.target_shapes:
                    n = _numel(shape)
                    nn.init.xavier_uniform_(out_w[start : start + n], generator=generator)
                    start += n
            else:
                nn.init.xavier_uniform_(out_w, generator=generator)
        self.layers = nn.ParameterList(layers)
        if self.chunk_size is not None:
            assert chunk_emb_size is not None
            self.chunk_embs: nn.Parameter | None = nn.Parameter(
                torch.randn(self.num_chunks, int(chunk_emb_size), generator=generator)
            )
        else:
            self.chunk_embs = None

    @property
    def theta(self) -> list[nn.Parameter]:
        """The regularised parameters: hypernetwork weights (and chunk embeddings when chunked)."""
        params = list(self.layers)
        if self.chunk_embs is not None:
            params.append(self.chunk_embs)
        return params

    def embeddings(self, tasks: Sequence[int] | range) -> torch.Tensor:
        """The embeddings of `tasks` stacked: [len(tasks), emb_size]."""
        return torch.stack([self.task_embs[t] for t in tasks])

    def forward(
        self,
        embs: torch.Tensor,
        theta: Sequence[torch.Tensor] | None = None,
        delta: Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Flat target weights for embeddings [K, emb] -> [K, num_outputs], at theta (default self.theta) + delta."""
        params = list(self.theta) if theta is None else list(theta)
        squeeze = embs.dim() == 1
        e = embs[None] if squeeze else embs
        k = e.shape[0]
        inp = e
        if self.chunk_embs is not None:
            chunk_embs = params[-1] if delta is None else params[-1] + delta[-1]
            # Every (task, chunk) pair is one input row: the chunk generator runs once, batched.
            inp = torch.cat(
                [e[:, None, :].expand(k, self.num_chunks, -1), chunk_embs[None].expand(k, -1, -1)], dim=-1
            )
        n_linear = len(self.layers)
        if delta is None:
            out = mlp_forward(pair_params(params[:n_linear]), inp, self._act)
        else:
            out = self._forward_shifted(inp, params[:n_linear], delta[:n_linear])
        out = out.reshape(k, -1)[:, : self.num_outputs]
        return out[0] if squeeze else out

    def _forward_shifted(
        self, x: torch.Tensor, params: Sequence[torch.Tensor], delta: Sequence[torch.Tensor]
    ) -> torch.Tensor:
        # x (W + dW)^T + (b + db) as x W^T + x dW^T + b + db: never materialises W + dW, which for
        # the output layer is as large as the whole target network times the hidden size.
        last = len(params) // 2 - 1
        for i, ((w, b), (dw, db)) in enumerate(zip(pair_params(params), pair_params(delta), strict=True)):
            x = F.linear(x, w, b) + F.linear(x, dw, db)
            if i < last:
                x = self._act(x)
        return x

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """A flat weight vector [num_outputs] -> the target's tensors in `target_shapes` order."""
        out, start = [], 0
        for shape in self.target_shapes:
            n = _numel(shape)
            out.append(flat[start : start + n].reshape(shape))
            start += n
        return out

    def weights(self, task: int) -> list[torch.Tensor]:
        """The target network's weights generated from task `task`'s embedding."""
        return self.split(self.forward(self.task_embs[task]))
