"""EnsembleDynamics: batched members, training with early stopping, shapes, save/load with normalisers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robolearn.errors import UserError
from robolearn.mbrl import models
from robolearn.mbrl.models import EnsembleDynamics, Normalizer, mlp_forward


def linear_system(n: int, seed: int = 0, noise: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Transitions of next = obs + A obs + B act (+ noise): learnable by a small MLP."""
    rng = np.random.default_rng(seed)
    a_mat, b_mat = rng.normal(size=(3, 3)) * 0.1, rng.normal(size=(3, 2))
    obs = rng.normal(size=(n, 3)).astype(np.float32) * 2 + 1
    act = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    nxt = obs + obs @ a_mat.T + act @ b_mat.T + noise * rng.normal(size=(n, 3))
    return obs, act, nxt.astype(np.float32)


def test_members_differ_and_run_in_one_batched_call(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"baddbmm": 0}
    real = torch.baddbmm

    def counting(bias: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        calls["baddbmm"] += 1
        return real(bias, x, w)

    monkeypatch.setattr(models.torch, "baddbmm", counting)
    counts = {}
    for members in (2, 7):
        calls["baddbmm"] = 0
        model = EnsembleDynamics(3, 2, hidden=(16, 16), members=members, seed=0)
        with torch.no_grad():
            means, _ = model.predict_members(torch.ones(5, 3), torch.ones(5, 2))
        counts[members] = calls["baddbmm"]
        assert means.shape == (members, 5, 3)
    # One baddbmm per layer whatever the member count: no Python loop over members.
    assert counts[2] == counts[7] == 3
    spread = means.std(dim=0).mean()
    assert spread > 1e-3, "ensemble members gave the same prediction"


def test_member_output_equals_that_members_own_network() -> None:
    model = EnsembleDynamics(3, 2, hidden=(8,), members=4, gaussian=False, seed=1)
    xn = torch.randn(6, 5)
    with torch.no_grad():
        batched, _ = model.forward_normalized(xn)
        for m in range(4):
            alone = mlp_forward([(w[m], b[m]) for w, b in model.layers()], xn, "silu")
            torch.testing.assert_close(batched[m], alone)


@pytest.mark.parametrize(("members", "gaussian"), [(1, True), (1, False), (3, True)])
def test_predict_mean_equals_predict(members: int, gaussian: bool) -> None:
    model = EnsembleDynamics(3, 2, hidden=(8, 8), members=members, gaussian=gaussian, seed=0)
    obs, act = torch.randn(4, 6, 3), torch.randn(4, 6, 2)
    with torch.no_grad():
        torch.testing.assert_close(model.predict_mean(obs, act), model.predict(obs, act)[0])


def test_fit_reduces_validation_error_on_a_linear_system() -> None:
    torch.manual_seed(0)
    obs, act, nxt = linear_system(1000)
    model = EnsembleDynamics(3, 2, hidden=(32, 32), members=2, gaussian=True, seed=0)
    first = model.fit(obs, act, nxt, epochs=1, batch_size=100, seed=0)
    more = model.fit(obs, act, nxt, epochs=20, batch_size=100, lr=3e-3, seed=0)
    assert more["val_mse"] < 0.2 * first["val_mse"]
    assert more["val_mse"] < 0.01  # normalised deltas: well under 1% of their variance left
    with torch.no_grad():
        mean, std = model.predict(torch.as_tensor(obs[:200]), torch.as_tensor(act[:200]))
    raw_mse = float(((mean - torch.as_tensor(nxt[:200])) ** 2).mean())
    assert raw_mse < 0.01 * float(np.var(nxt[:200] - obs[:200]))
    assert bool((std > 0).all())


def test_early_stopping_stops_when_validation_cannot_improve() -> None:
    # Targets are pure noise: the held-out error cannot keep improving, so training stops before `epochs`.
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(600, 3)).astype(np.float32)
    act = rng.normal(size=(600, 2)).astype(np.float32)
    nxt = (obs + rng.normal(size=(600, 3))).astype(np.float32)
    model = EnsembleDynamics(3, 2, hidden=(64, 64), members=1, gaussian=False, seed=0)
    info = model.fit(obs, act, nxt, epochs=200, batch_size=32, lr=3e-3, patience=3, seed=0)
    assert info["stopped_early"] == 1.0
    assert info["epochs"] < 200
    assert info["epochs"] == info["best_epoch"] + 3


def test_max_steps_caps_gradient_steps() -> None:
    obs, act, nxt = linear_system(400)
    model = EnsembleDynamics(3, 2, hidden=(8,), seed=0)
    assert model.fit(obs, act, nxt, epochs=50, batch_size=32, max_steps=7)["steps"] == 7


@pytest.mark.parametrize("gaussian", [True, False])
def test_predict_shapes_with_leading_batch_dims(gaussian: bool) -> None:
    model = EnsembleDynamics(3, 2, hidden=(8,), members=3, gaussian=gaussian, seed=0)
    with torch.no_grad():
        mean, std = model.predict(torch.zeros(4, 7, 3), torch.zeros(4, 7, 2))
        assert mean.shape == std.shape == (4, 7, 3)
        mean, std = model.predict(torch.zeros(3), torch.zeros(2))
        assert mean.shape == (3,)
        # Broadcast one observation against many actions (what a planner's first step does).
        mean, _ = model.predict(torch.zeros(3), torch.zeros(10, 2))
        assert mean.shape == (10, 3)
        means, stds = model.predict_members(torch.zeros(4, 7, 3), torch.zeros(4, 7, 2))
        assert means.shape == stds.shape == (3, 4, 7, 3)
        single = EnsembleDynamics(3, 2, hidden=(8,), members=1, gaussian=gaussian, seed=0)
        _, std1 = single.predict(torch.zeros(5, 3), torch.zeros(5, 2))
    if not gaussian:
        assert bool((std1 == 0).all())
    else:
        assert bool((std1 > 0).all())


def test_logvar_stays_within_learned_bounds() -> None:
    model = EnsembleDynamics(3, 2, hidden=(8,), members=2, gaussian=True, seed=0)
    with torch.no_grad():
        model.weights[-1].mul_(1e3)  # push raw log-variances far out
        _, logvar = model.forward_normalized(torch.randn(50, 5) * 10)
    assert logvar is not None
    # Soft bounds: the upper one can be passed by softplus(max - min)'s tail, e^-10.5 here.
    assert float(logvar.max()) <= float(model.max_logvar.detach().max()) + 1e-3
    assert float(logvar.min()) >= float(model.min_logvar.detach().min()) - 1e-3
    assert float(logvar.max()) > 0.4 and float(logvar.min()) < -9.9  # both bounds were reached


def test_save_load_round_trip_keeps_normalisers(tmp_path: Path) -> None:
    obs, act, nxt = linear_system(300)
    model = EnsembleDynamics(3, 2, hidden=(16,), members=2, seed=0)
    model.fit(obs, act, nxt, epochs=2, batch_size=64)
    assert "in_norm.mean" in model.state_dict() and "out_norm.std" in model.state_dict()
    assert float(model.in_norm.mean.abs().sum()) > 0.1  # fitted, not the identity
    model.save(tmp_path / "model.pt")
    loaded = EnsembleDynamics.load(tmp_path / "model.pt")
    torch.testing.assert_close(loaded.in_norm.mean, model.in_norm.mean)
    with torch.no_grad():
        a = model.predict(torch.as_tensor(obs[:9]), torch.as_tensor(act[:9]))
        b = loaded.predict(torch.as_tensor(obs[:9]), torch.as_tensor(act[:9]))
    torch.testing.assert_close(a, b)


def test_normalizer_floors_constant_features() -> None:
    norm = Normalizer(2)
    norm.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    x = torch.tensor([[2.0, 5.0]])
    assert torch.isfinite(norm.normalize(x)).all()
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x)


def test_bad_inputs_are_user_errors() -> None:
    model = EnsembleDynamics(3, 2, hidden=(8,), seed=0)
    with pytest.raises(UserError, match="obs_dim=3"):
        model.predict(torch.zeros(4), torch.zeros(2))
    with pytest.raises(UserError, match="must match"):
        model.fit(np.zeros((5, 3)), np.zeros((4, 2)), np.zeros((5, 3)), epochs=1)
    with pytest.raises(UserError, match="activation"):
        EnsembleDynamics(3, 2, activation="gelu2")
    with pytest.raises(UserError, match="members=0"):
        EnsembleDynamics(3, 2, members=0)
