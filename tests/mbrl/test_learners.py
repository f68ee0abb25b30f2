"""Continual learners on a toy two-task linear system: fitting, forgetting, penalties, exact resume."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch

from robolearn.errors import UserError
from robolearn.mbrl.continual.learners import (
    DEFAULTS,
    LEARNERS,
    EWCLearner,
    HyperCRLLearner,
    SILearner,
    adam_lookahead,
    make_learner,
)

Data = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """One torch thread: tiny networks run fastest so, and a shared CPU is not oversubscribed."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Two linear systems x' = A x + B u with different dynamics (the "tasks").
_A = [np.array([[0.9, 0.1], [0.0, 0.95]]), np.array([[0.6, -0.4], [0.3, 1.1]])]
_B = [np.array([[0.5], [0.1]]), np.array([[-0.5], [0.7]])]


def toy(task: int, n: int = 300, seed: int = 0) -> Data:
    """n transitions of toy task `task` from random states and actions."""
    rng = np.random.default_rng(seed + 10 * task)
    obs = rng.normal(size=(n, 2)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(n, 1)).astype(np.float32)
    return obs, act, (obs @ _A[task].T + act @ _B[task].T).astype(np.float32)


def cfg(iters: int = 150, gaussian: bool = False, model_lr: float = 1e-3, **learner: Any) -> dict[str, Any]:
    """A small learner config (16x16 MLP; `model_lr` trains the baselines' MLP, learner keys go beside it)."""
    model = {"hidden": [16, 16], "train_iters": iters, "batch_size": 32, "gaussian": gaussian, "lr": model_lr}
    return {"model": model, **learner}


def predict(learner: Any, task: int, data: Data) -> torch.Tensor:
    """The learner's mean next-state prediction for task `task` on `data`."""
    obs, act, _ = data
    return learner.model(task).predict(torch.as_tensor(obs), torch.as_tensor(act))[0]


def test_regulariser_keeps_earlier_outputs_where_finetune_drifts() -> None:
    """After task 1, HyperCRL's weights for task 0 barely move; without beta (and finetune) they drift."""
    d0, d1 = toy(0), toy(1)
    x0, y0 = torch.as_tensor(d0[0]), torch.as_tensor(d0[2])
    drift: dict[str, float] = {}
    weight_drift: dict[str, float] = {}
    for name in ("hypercrl", "hypercrl_noreg", "finetune"):
        learner = make_learner(
            name,
            2,
            1,
            2,
            cfg(iters=100, lr=1e-3) if name != "finetune" else cfg(iters=100, model_lr=3e-3),
            "cpu",
            0,
        )
        learner.begin_task(0)
        learner.fit(0, *d0)
        learner.end_task(0, *d0)
        before = predict(learner, 0, d0)
        hnet = learner.hnet if isinstance(learner, HyperCRLLearner) else None
        w_before = None if hnet is None else hnet(hnet.task_embs[0]).detach()
        learner.begin_task(1)
        learner.fit(1, *d1)
        # Prediction drift on task 0, relative to the size of task 0's state changes.
        drift[name] = float(((predict(learner, 0, d0) - before) ** 2).mean() / ((y0 - x0) ** 2).mean())
        if hnet is not None and w_before is not None:
            w_after = hnet(hnet.task_embs[0]).detach()
            weight_drift[name] = float((w_after - w_before).norm() / w_before.norm())
    assert weight_drift["hypercrl"] < 0.03, weight_drift
    assert weight_drift["hypercrl_noreg"] > 10 * weight_drift["hypercrl"], weight_drift
    assert drift["hypercrl"] < 0.01, drift
    assert drift["finetune"] > 0.05 and drift["hypercrl_noreg"] > 0.05, drift
    print(f"relative drift on task 0: predictions {drift}, hypernetwork outputs {weight_drift}")


@pytest.mark.parametrize("name", LEARNERS)
def test_every_learner_fits_and_resumes_exactly(name: str) -> None:
    """Loss falls on each task; a state_dict saved mid-task reloads into a fresh learner and continues identically."""
    d0, d1 = toy(0, 200), toy(1, 200)
    settings = cfg(iters=60, model_lr=1e-2)
    if "hypercrl" in name:
        settings["lr"] = 3e-3  # the hypernetwork's learning rate
    learner = make_learner(name, 2, 1, 2, settings, "cpu", 3)
    learner.begin_task(0)
    info = learner.fit(0, *d0)
    assert info["loss"] < 0.3 * info["loss_first"], info
    learner.end_task(0, *d0)
    learner.begin_task(1)
    info = learner.fit(1, *d1)
    assert info["loss"] < 0.3 * info["loss_first"], info
    # Through bytes, as a run checkpoint stores it.
    buf = io.BytesIO()
    torch.save(learner.state_dict(), buf)
    buf.seek(0)
    clone = make_learner(name, 2, 1, 2, settings, "cpu", 99)
    clone.load_state_dict(torch.load(buf, weights_only=False))
    for task in (0, 1):
        torch.testing.assert_close(predict(clone, task, d1), predict(learner, task, d1), rtol=0, atol=0)
    # Continuing both (same batches, same optimiser state, same memories) gives the same model.
    a, b = learner.fit(1, *d1), clone.fit(1, *d1)
    assert a == b
    learner.end_task(1, *d1)
    clone.end_task(1, *d1)
    for task in (0, 1):
        torch.testing.assert_close(predict(clone, task, d0), predict(learner, task, d0), rtol=0, atol=0)


def test_gaussian_head_gives_positive_std_in_raw_units() -> None:
    """A Gaussian head's std is positive and scales with the data's delta scale."""
    obs, act, nxt = toy(0, 200)
    stds = []
    for scale in (1.0, 100.0):
        learner = make_learner("hypercrl", 2, 1, 1, cfg(iters=30, gaussian=True), "cpu", 0)
        learner.begin_task(0)
        learner.fit(0, obs * scale, act, nxt * scale)
        mean, std = learner.model(0).predict(torch.as_tensor(obs * scale), torch.as_tensor(act))
        assert mean.shape == std.shape == (200, 2) and bool((std > 0).all())
        # The planners' mean-only path skips the variance head and agrees with predict.
        model = learner.model(0)
        torch.testing.assert_close(
            model.predict_mean(torch.as_tensor(obs * scale), torch.as_tensor(act)), mean
        )
        stds.append(float(std.mean()))
    assert 50 < stds[1] / stds[0] < 200


def test_ewc_and_si_penalties_are_zero_at_the_anchor_and_positive_away() -> None:
    """The EWC and SI penalties vanish at the weights they anchor to and grow when the trunk moves."""
    d0 = toy(0, 200)
    for name in ("ewc", "si"):
        learner = make_learner(name, 2, 1, 2, cfg(iters=60), "cpu", 0)
        assert isinstance(learner, EWCLearner | SILearner)
        learner.begin_task(0)
        learner.fit(0, *d0)
        assert learner.penalty() == 0.0  # nothing to protect on the first task
        learner.end_task(0, *d0)
        learner.begin_task(1)
        assert learner.penalty() == pytest.approx(0.0, abs=1e-12)
        with torch.no_grad():
            for p in learner._trunk():
                p.add_(0.05)
        assert learner.penalty() > 1e-4, name


@pytest.mark.parametrize("fused", [False, True])
def test_adam_lookahead_is_the_step_adam_takes(fused: bool) -> None:
    """The look-ahead delta_theta equals what Adam's step() then adds, on the first and a later step."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(5, 3))
    opt = torch.optim.Adam([w], lr=1e-2, fused=fused)
    for _ in range(3):
        opt.zero_grad()
        (w**3).sum().backward()
        (delta,) = adam_lookahead(opt)
        before = w.detach().clone()
        opt.step()
        torch.testing.assert_close(w.detach() - before, delta)


def test_hypercrl_freezes_earlier_embeddings_and_saves_targets() -> None:
    """Training task 1 leaves task 0's embedding untouched; the targets are task 0's weights at task 1's start."""
    d0, d1 = toy(0, 200), toy(1, 200)
    learner = make_learner("hypercrl", 2, 1, 2, cfg(iters=30), "cpu", 0)
    assert isinstance(learner, HyperCRLLearner)
    learner.begin_task(0)
    learner.fit(0, *d0)
    learner.end_task(0, *d0)
    emb0 = learner.hnet.task_embs[0].detach().clone()
    learner.begin_task(1)
    torch.testing.assert_close(learner.targets[0], learner.hnet(emb0).detach())
    assert float(learner.regularizer().detach()) == pytest.approx(0.0, abs=1e-10)
    info = learner.fit(1, *d1)
    assert "reg" in info
    torch.testing.assert_close(learner.hnet.task_embs[0].detach(), emb0, rtol=0, atol=0)


def test_learner_errors_are_one_line() -> None:
    """Unknown learners, contradictory settings and out-of-order calls fail with a one-line UserError."""
    with pytest.raises(UserError, match=r"learner='hypercrll'.*did you mean hypercrl"):
        make_learner("hypercrll", 2, 1, 2, cfg(), "cpu", 0)
    with pytest.raises(UserError, match="hypercrl_noreg has beta=0"):
        make_learner("hypercrl_noreg", 2, 1, 2, cfg(beta=0.05), "cpu", 0)
    with pytest.raises(
        UserError, match=r"learner\.betta is not a setting of learner=hypercrl \(did you mean beta"
    ):
        make_learner("hypercrl", 2, 1, 2, cfg(betta=0.1), "cpu", 0)
    with pytest.raises(UserError, match=r"learner\.beta is not a setting of learner=finetune"):
        make_learner("finetune", 2, 1, 2, cfg(beta=0.1), "cpu", 0)
    with pytest.raises(UserError, match=r"model\.hidden"):
        make_learner("finetune", 2, 1, 2, {"model": {"hidden": []}}, "cpu", 0)
    learner = make_learner("finetune", 2, 1, 2, cfg(), "cpu", 0)
    learner.begin_task(0)
    with pytest.raises(UserError, match=r"fit\(task=1\)"):
        learner.fit(1, *toy(1, 10))
    with pytest.raises(UserError, match="no transitions"):
        learner.fit(0, *(x[:0] for x in toy(0, 10)))
    assert set(DEFAULTS) == set(LEARNERS)


def test_chunked_hypercrl_fits_and_regularises() -> None:
    """With chunked generation HyperCRL still fits each task, and task 1's fit carries the regulariser."""
    d0, d1 = toy(0, 200), toy(1, 200)
    learner = make_learner(
        "hypercrl", 2, 1, 2, cfg(iters=60, chunked=True, chunk_size=100, lr=3e-3), "cpu", 0
    )
    assert isinstance(learner, HyperCRLLearner)
    assert learner.hnet.num_chunks == -(-learner.hnet.num_outputs // 100)
    learner.begin_task(0)
    info = learner.fit(0, *d0)
    assert info["loss"] < 0.3 * info["loss_first"], info
    learner.end_task(0, *d0)
    learner.begin_task(1)
    info = learner.fit(1, *d1)
    assert info["loss"] < 0.3 * info["loss_first"] and info["reg"] >= 0.0, info
