"""The hypernetwork: generated weights have the target MLP's shapes (chunked or not) and drive it."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from robolearn.errors import UserError
from robolearn.mbrl.hypernet import (
    OFFICIAL_HNET_HIDDEN,
    HyperNetwork,
    default_chunking,
    default_hnet_hidden,
    mlp_forward,
    mlp_shapes,
    pair_params,
)


@pytest.mark.parametrize("chunk_size", [None, 97, 5000])
@pytest.mark.parametrize("hidden", [(32, 32), (200, 200, 200, 200)])
def test_generated_weights_match_the_target_network(chunk_size: int | None, hidden: tuple[int, ...]) -> None:
    """Every generated tensor has the shape of the matching nn.Linear parameter, chunked or not."""
    target = nn.Sequential(nn.Linear(7, hidden[0]), nn.ReLU())
    for a, b in itertools.pairwise(hidden):
        target.extend([nn.Linear(a, b), nn.ReLU()])
    target.append(nn.Linear(hidden[-1], 10))
    expected = [tuple(p.shape) for p in target.parameters()]
    assert mlp_shapes(7, 10, hidden) == expected

    hnet = HyperNetwork(
        expected, num_tasks=3, hidden=(8, 8), chunk_size=chunk_size, chunk_emb_size=4 if chunk_size else None
    )
    total = sum(p.numel() for p in target.parameters())
    assert hnet.num_outputs == total
    flat = hnet(hnet.embeddings(range(3)))
    assert flat.shape == (3, total)
    for task in range(3):
        weights = hnet.weights(task)
        assert [tuple(w.shape) for w in weights] == expected
        # The batched call over embeddings gives each task's own weights.
        torch.testing.assert_close(torch.cat([w.reshape(-1) for w in weights]), flat[task])
    if chunk_size:
        assert hnet.num_chunks == -(-total // chunk_size)
        assert hnet.chunk_embs is not None and any(p is hnet.chunk_embs for p in hnet.theta)
        # The output layer scales with the chunk size, not with the target's size.
        assert hnet.layers[-2].shape == (chunk_size, 8)
    # Different embeddings generate different networks.
    assert not torch.allclose(flat[0], flat[1])


def test_the_target_mlp_runs_on_generated_weights() -> None:
    """mlp_forward on generated weights equals nn.Linear layers holding the same weights."""
    torch.manual_seed(0)
    hnet = HyperNetwork(mlp_shapes(5, 3, (16, 16)), num_tasks=2, hidden=(8,), activation="elu")
    weights = hnet.weights(1)
    net = nn.Sequential(nn.Linear(5, 16), nn.SiLU(), nn.Linear(16, 16), nn.SiLU(), nn.Linear(16, 3))
    with torch.no_grad():
        for p, w in zip(net.parameters(), weights, strict=True):
            p.copy_(w)
    x = torch.randn(4, 6, 5)
    torch.testing.assert_close(mlp_forward(pair_params(weights), x, "silu"), net(x))
    # Gradients reach the hypernetwork and the task's embedding through the generated weights.
    mlp_forward(pair_params(hnet.weights(1)), x, "silu").sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hnet.theta)
    assert hnet.task_embs[1].grad is not None and hnet.task_embs[0].grad is None


@pytest.mark.parametrize("chunk_size", [None, 10])
def test_explicit_theta_and_delta_evaluate_a_shifted_hypernetwork(chunk_size: int | None) -> None:
    """forward(e, theta) uses the given theta; forward(e, delta=d) equals forward at theta + d."""
    torch.manual_seed(0)
    hnet = HyperNetwork(
        mlp_shapes(3, 2, (8,)), num_tasks=2, chunk_size=chunk_size, chunk_emb_size=3 if chunk_size else None
    )
    e = hnet.embeddings(range(2))
    torch.testing.assert_close(hnet(e, hnet.theta), hnet(e))
    delta = [0.05 * torch.randn_like(p) for p in hnet.theta]
    shifted = [p + d for p, d in zip(hnet.theta, delta, strict=True)]
    assert not torch.allclose(hnet(e, shifted), hnet(e))
    torch.testing.assert_close(hnet(e, delta=delta), hnet(e, shifted))


def test_official_size_tables_and_bad_input() -> None:
    """The official hypernetwork sizes are looked up; bad sizes and names fail with one line."""
    assert (
        default_hnet_hidden([200, 200, 200, 200]) == OFFICIAL_HNET_HIDDEN[(200, 200, 200, 200)] == (256, 256)
    )
    assert default_hnet_hidden([32, 32]) == (16, 16)
    assert default_chunking([200, 200, 200, 200]) == ((25, 30), 4000, 20)
    with pytest.raises(UserError, match=r"activation 'rleu'.*did you mean relu"):
        HyperNetwork(mlp_shapes(3, 2, (8,)), num_tasks=1, activation="rleu")
    with pytest.raises(UserError, match="chunk_size=0"):
        HyperNetwork(mlp_shapes(3, 2, (8,)), num_tasks=1, chunk_size=0, chunk_emb_size=2)
    with pytest.raises(UserError, match="num_tasks=0"):
        HyperNetwork(mlp_shapes(3, 2, (8,)), num_tasks=0)
