"""CAMEL masking: actions stay in the mask box, eps = 0 is plain TD3 bit for bit, bad priors are
refused or disabled, the map is differentiated in the actor loss, and each method.masked_replay mode
does what it says once eps = 0."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from train_helpers import run_cli, tiny_config

from robolearn.config.validate import validate_train_config
from robolearn.errors import UserError
from robolearn.methods.camel import (
    CAMEL_ALGORITHMS,
    MASKED_REPLAY_MODES,
    CamelReplayBuffer,
    CamelSAC,
    CamelTD3,
    MaskedSamples,
    epsilon,
    map_into_box,
    mask_box,
)
from robolearn.runs.trainer import Trainer

PRIOR = "pendulum_energy_swingup"


def camel_config(*extra: str, algo: str = "td3"):  # type: ignore[no-untyped-def]
    return tiny_config(algo, "method=camel", f"method.prior={PRIOR}", "method.probe=false", *extra)


def test_box_and_map_stay_inside_bounds() -> None:
    rng = np.random.default_rng(0)
    prior = rng.uniform(-1, 1, size=(1000, 3))
    low, high = mask_box(prior, 0.3)
    assert np.all(low >= -1) and np.all(high <= 1) and np.all(high - low <= 0.6 + 1e-12)
    u = rng.uniform(-1, 1, size=(1000, 3))
    a = map_into_box(u, low, high)
    assert np.all(a >= low - 1e-12) and np.all(a <= high + 1e-12)
    assert np.allclose(map_into_box(-np.ones(3), low[0], high[0]), low[0])
    assert np.allclose(map_into_box(np.ones(3), low[0], high[0]), high[0])


def test_epsilon_schedule() -> None:
    assert epsilon(0, 1000, 0.5) == 1.0
    assert epsilon(250, 1000, 0.5) == pytest.approx(0.5)
    assert epsilon(500, 1000, 0.5) == 0.0 and epsilon(900, 1000, 0.5) == 0.0
    assert epsilon(0, 1000, 0.0) == 0.0


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_masked_actions_inside_box_and_bounds(tmp_path: Path, algo: str) -> None:
    run = tmp_path / "run"
    trainer = Trainer(
        camel_config("steps=400", "method.eps_fraction=1.0", "method.eps_mode=step", algo=algo), run, "test"
    )
    trainer.run_training()
    model = trainer.model
    assert isinstance(model, CAMEL_ALGORITHMS[algo])
    buffer = model.replay_buffer
    assert isinstance(buffer, CamelReplayBuffer)
    n = buffer.pos
    masked = buffer.masked[:n, 0] > 0
    assert 0 < masked.sum() < n, "eps decays from 1 over training: some steps masked, some not"
    actions = buffer.actions[:n, 0]
    low, high = buffer.mask_low[:n, 0], buffer.mask_high[:n, 0]
    assert np.all(actions[masked] >= low[masked] - 1e-6) and np.all(actions[masked] <= high[masked] + 1e-6)
    assert np.all(np.abs(actions) <= 1.0)
    # The box is centred on the prior (clipped to the bounds), radius 0.3 of the half-range.
    assert np.all(high[masked] - low[masked] <= 0.6 + 1e-6)
    assert np.all(buffer.next_mask_high[:n, 0][masked] - buffer.next_mask_low[:n, 0][masked] <= 0.6 + 1e-6)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "camel" and summary["camel/prior_status"].startswith("ok")
    assert summary["camel/masked_replay"] == "mapped"


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Trainer, dict[str, Any]]]:
    """The plain agent's tiny run, trained once per algorithm for the bit-for-bit comparisons."""
    runs: dict[str, tuple[Trainer, dict[str, Any]]] = {}

    def run(algo: str) -> tuple[Trainer, dict[str, Any]]:
        if algo not in runs:
            trainer = Trainer(tiny_config(algo, "steps=400"), tmp_path_factory.mktemp("plain") / algo, "test")
            runs[algo] = trainer, trainer.run_training()
        return runs[algo]

    return run


@pytest.mark.parametrize("mode", MASKED_REPLAY_MODES)
@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_eps_zero_is_the_plain_algorithm_bit_for_bit(
    tmp_path: Path, algo: str, mode: str, plain_run: Callable[[str], tuple[Trainer, dict[str, Any]]]
) -> None:
    plain, plain_summary = plain_run(algo)
    camel = Trainer(
        camel_config("steps=400", "method.eps_fraction=0.0", f"method.masked_replay={mode}", algo=algo),
        tmp_path / "camel",
        "test",
    )
    camel_summary = camel.run_training()
    assert camel_summary["camel/masked_replay"] == mode
    assert isinstance(camel.model, CAMEL_ALGORITHMS[algo])
    assert not isinstance(plain.model, CAMEL_ALGORITHMS[algo])
    assert camel_summary["eval/returns"] == plain_summary["eval/returns"]
    for (name, p), (_, q) in zip(
        plain.model.policy.state_dict().items(), camel.model.policy.state_dict().items(), strict=True
    ):
        assert th.equal(p, q), name


def test_actor_loss_differentiates_through_the_map() -> None:
    low, high = th.tensor([[-0.2]]), th.tensor([[0.4]])
    u = th.tensor([[0.5]], requires_grad=True)
    a = map_into_box(u, low, high)
    a.sum().backward()
    assert u.grad is not None and float(u.grad) == pytest.approx(0.3)  # (high - low) / 2


def test_failing_prior_is_disabled_and_training_continues(tmp_path: Path) -> None:
    trainer = Trainer(camel_config("steps=300", "method.eps_fraction=1.0"), tmp_path / "run", "test")
    calls = {"n": 0}

    def flaky(obs: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 50:
            raise ZeroDivisionError("prior bug")
        return np.zeros((len(obs), 1))

    real_configure = CamelTD3.configure_camel

    def configure(self: CamelTD3, prior_fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_configure(self, flaky, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CamelTD3, "configure_camel", configure)
        summary = trainer.run_training()
    assert trainer.model.camel_prior_disabled  # type: ignore[attr-defined]
    assert summary["steps"] >= 300
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("camel/prior_disabled") == 1 for r in rows)


BAD_PRIOR = """# robolearn-prior: 1
# env: Pendulum-v1
# name: bad_prior
# origin: hand-written
# label: a test prior that imports os
# model: none
# prompt_sha256: none
# created: 2026-11-26

import os
import numpy as np

def policy(obs):
    return np.zeros(1)
"""


def test_bad_prior_stops_before_training_or_trains_unmasked(tmp_path: Path) -> None:
    bad = tmp_path / "bad_prior.py"
    bad.write_text(BAD_PRIOR)
    run = tmp_path / "stop"
    with pytest.raises(UserError, match="on_bad_prior=unmasked"):
        Trainer(tiny_config("td3", "method=camel", f"method.prior={bad}"), run, "test").run_training()
    assert not (run / "metrics.jsonl").exists() or (run / "metrics.jsonl").stat().st_size == 0

    summary = Trainer(
        tiny_config(
            "td3", "steps=300", "method=camel", f"method.prior={bad}", "method.on_bad_prior=unmasked"
        ),
        tmp_path / "unmasked",
        "test",
    ).run_training()
    assert summary["camel/prior_status"].startswith("unmasked:") and "os" in summary["camel/prior_status"]


def test_cli_refuses_camel_with_ppo(tmp_path: Path) -> None:
    result = run_cli(
        "robolearn.train", "agent=ppo", "method=camel", f"method.prior={PRIOR}", f"hydra.run.dir={tmp_path}/r"
    )
    assert (
        result.returncode == 2
        and result.stderr.strip() == "error: method=camel needs agent=td3 or agent=sac, not agent=ppo"
    )


def test_expert_masking_centres_the_mask_on_a_trained_run(tmp_path: Path) -> None:
    expert = tmp_path / "expert"
    Trainer(tiny_config("td3", "steps=300"), expert, "test").run_training()
    run = tmp_path / "masked"
    trainer = Trainer(
        tiny_config(
            "td3", "steps=300", "method=camel", f"method.prior=expert:{expert}", "method.eps_fraction=1.0"
        ),
        run,
        "test",
    )
    summary = trainer.run_training()
    assert summary["camel/prior_status"] == "ok (expert)"
    buffer = trainer.model.replay_buffer
    assert isinstance(buffer, CamelReplayBuffer) and buffer.masked[: buffer.pos].sum() > 0


def test_eval_mask_evaluates_the_actor_through_the_mask_while_eps_is_positive(tmp_path: Path) -> None:
    import gymnasium as gym

    from robolearn.methods.camel_prior import resolve_prior
    from robolearn.runs.evaluation import evaluate_policy

    # A narrow box around a good prior: through the mask the barely trained actor acts like the prior.
    cfg = camel_config("method.eval_mask=true", "method.eps_fraction=1.0", "method.radius=0.02")
    trainer = Trainer(cfg, tmp_path / "run", "test")
    trainer.run_training()
    rows = [r for r in read_rows(tmp_path / "run") if "eval/mean_return" in r]
    # Every evaluation before the last (where eps has just reached 0) also ran through the mask.
    assert [r["step"] for r in rows if "eval/masked/mean_return" in r] == [r["step"] for r in rows[:-1]]
    prior_fn, _ = resolve_prior(cfg, trainer.venv)

    class Prior:
        def predict(self, obs: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
            return np.clip(prior_fn(obs[None])[0], -2.0, 2.0), None

    alone = evaluate_policy(Prior(), gym.make("Pendulum-v1"), 2, cfg.seed + cfg.eval.seed_offset)  # type: ignore[arg-type]
    masked = rows[0]["eval/masked/mean_return"]
    assert masked == pytest.approx(alone.mean_return, rel=0.2)
    assert masked > rows[0]["eval/mean_return"] + 200  # the barely trained standalone actor is far worse
    # Once eps has reached 0 there is nothing to mask: no masked evaluation is logged.
    late = Trainer(
        camel_config("method.eval_mask=true", "method.eps_fraction=0.25"), tmp_path / "late", "test"
    )
    late.run_training()
    assert not any("eval/masked/mean_return" in r for r in read_rows(tmp_path / "late"))


def read_rows(run: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_prior_runs_once_per_env_step(tmp_path: Path) -> None:
    # The box at s' is the next step's box at s: the agent must not ask the prior twice for it.
    trainer = Trainer(
        camel_config("steps=400", "method.eps_fraction=1.0", "eval.every=1000"), tmp_path / "r", "test"
    )
    calls = {"n": 0}
    real_configure = CamelTD3.configure_camel

    def configure(self: CamelTD3, prior_fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        def counted(obs: np.ndarray) -> np.ndarray:
            calls["n"] += 1
            return prior_fn(obs)

        real_configure(self, counted, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CamelTD3, "configure_camel", configure)
        trainer.run_training()
    masked = trainer.model.camel_counts  # type: ignore[attr-defined]
    assert masked[0] > 300  # nearly every step acted under the mask (eps decays from 1 over the run)
    # One call per masked step, plus one at each episode start (Pendulum: 200-step episodes).
    assert calls["n"] <= 400 + 400 // 200 + 1


def test_mask_box_is_centred_on_the_prior_at_the_stored_observation(tmp_path: Path) -> None:
    # Regression: without VecNormalize, SB3's _last_original_obs is the previous step's observation;
    # the box must come from the observation the transition starts in.
    trainer = Trainer(
        camel_config("steps=300", "method.eps_fraction=1.0", "eval.every=1000"), tmp_path / "r", "test"
    )
    real_configure = CamelTD3.configure_camel

    def configure(self: CamelTD3, prior_fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        real_configure(self, lambda obs: 0.1 * np.asarray(obs)[:, 2:3], *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CamelTD3, "configure_camel", configure)
        trainer.run_training()
    buffer = trainer.model.replay_buffer  # type: ignore[attr-defined]
    n = buffer.pos
    rows = buffer.masked[:n, 0] > 0
    assert rows.sum() >= 100
    centre = 0.5 * (buffer.mask_low[:n, 0, 0] + buffer.mask_high[:n, 0, 0])[rows]
    expected = (0.1 * buffer.observations[:n, 0, 2] / 2.0)[rows]  # Pendulum's bounds are +-2
    np.testing.assert_allclose(centre, expected, atol=1e-5)


def test_reconfiguring_without_a_prior_disables_the_mask_instead_of_crashing(tmp_path: Path) -> None:
    # What a resume does when the prior no longer resolves and method.on_bad_prior=unmasked.
    trainer = Trainer(
        camel_config("steps=300", "method.eps_fraction=1.0", "eval.every=1000"), tmp_path / "r", "test"
    )
    trainer.run_training()
    model = trainer.model
    assert not model.camel_prior_disabled  # type: ignore[attr-defined]
    model.configure_camel(None, radius=0.3, eps_fraction=1.0, eps_mode="episode", total_steps=10**6, seed=0)  # type: ignore[attr-defined]
    from stable_baselines3.common.logger import configure

    model.set_logger(configure(None, []))  # the run's logger and checkpoint hook ended with the run
    model.before_collect = None  # type: ignore[attr-defined]
    start = model.replay_buffer.pos  # type: ignore[attr-defined]
    model.learn(200, reset_num_timesteps=False)
    assert model.camel_prior_disabled  # type: ignore[attr-defined]
    assert not model.replay_buffer.masked[start : start + 200].any()  # type: ignore[attr-defined]


# -- method.masked_replay on hand-made replay ---------------------------------------------------------
# Pendulum (3-d observation, 1-d action); 64 transitions, the even ones masked into the narrow box
# [0.5, 0.7], far from where an untrained actor acts, so mapping changes every masked action.
OBS_UNMASKED = np.array([0.6, -0.8, 0.5], dtype=np.float32)
OBS_MASKED = np.array([-0.9, 0.4, -1.5], dtype=np.float32)
TOTAL = 1000  # env steps of the hand-made schedule: eps_fraction 0.5, so eps = 0 from step 500
BEFORE_EPS_ZERO, AFTER_EPS_ZERO = 100, 800


class _Instrumented:
    """Counts the update's calls of the box map and keeps every batch `drop` gives the actor."""

    map_calls: int
    actor_batches: list[MaskedSamples]

    def _map_batch(self, samples: MaskedSamples, actions: th.Tensor, next_state: bool = False) -> th.Tensor:
        self.map_calls += 1
        return super()._map_batch(samples, actions, next_state)  # type: ignore[misc]

    def _unmasked_batch(self, batch: MaskedSamples, batch_size: int) -> MaskedSamples | None:
        actor_batch = super()._unmasked_batch(batch, batch_size)  # type: ignore[misc]
        assert actor_batch is not None
        self.actor_batches.append(actor_batch)
        return actor_batch


class InstrumentedTD3(_Instrumented, CamelTD3):
    pass


class InstrumentedSAC(_Instrumented, CamelSAC):
    pass


INSTRUMENTED = {"td3": InstrumentedTD3, "sac": InstrumentedSAC}


def hand_made_agent(algo: str, mode: str, steps_done: int, masked_obs: np.ndarray = OBS_MASKED) -> Any:
    """A tiny CAMEL agent whose replay holds the hand-made transitions, `steps_done` steps into the
    schedule. TD3 updates its actor at every gradient step (policy_delay=1)."""
    from stable_baselines3.common.logger import configure

    extra = {"policy_delay": 1} if algo == "td3" else {}
    model = INSTRUMENTED[algo](
        "MlpPolicy",
        "Pendulum-v1",
        buffer_size=64,
        learning_starts=0,
        batch_size=16,
        policy_kwargs={"net_arch": [16]},
        replay_buffer_class=CamelReplayBuffer,
        seed=0,
        **extra,
    )
    model.map_calls, model.actor_batches = 0, []
    model.set_logger(configure(None, []))
    model.configure_camel(
        lambda obs: np.zeros((len(obs), 1)),
        radius=0.1,
        eps_fraction=0.5,
        eps_mode="episode",
        total_steps=TOTAL,
        seed=0,
        masked_replay=mode,
    )
    model.num_timesteps = steps_done
    buffer = model.replay_buffer
    masked = (np.arange(64) % 2 == 0)[:, None]
    rng = np.random.default_rng(0)
    buffer.observations[:] = np.where(masked[:, :, None], masked_obs, OBS_UNMASKED)
    buffer.next_observations[:] = buffer.observations
    buffer.actions[:] = rng.uniform(-1, 1, size=buffer.actions.shape)
    buffer.rewards[:] = rng.normal(size=buffer.rewards.shape)
    buffer.dones[:] = 0.0
    buffer.masked[:] = masked
    for low, high in ((buffer.mask_low, buffer.mask_high), (buffer.next_mask_low, buffer.next_mask_high)):
        low[:] = np.where(masked[:, :, None], 0.5, -1.0)
        high[:] = np.where(masked[:, :, None], 0.7, 1.0)
    buffer.pos, buffer.full = 0, True
    return model


def train_hand_made(model: Any, gradient_steps: int) -> None:
    np.random.seed(0)
    th.manual_seed(0)
    model.train(gradient_steps=gradient_steps, batch_size=16)


def test_masked_replay_mode_is_checked(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"^method\.masked_replay=dorp is not allowed.*choose one of mapped, raw, drop$"
    ):
        validate_train_config(camel_config("method.masked_replay=dorp"))
    with pytest.raises(
        UserError, match=r"^method\.masked_replay=keep is not allowed; choose one of mapped, raw, drop$"
    ):
        hand_made_agent("td3", "keep", AFTER_EPS_ZERO)


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_masked_replay_modes_update_identically_before_eps_reaches_zero(algo: str) -> None:
    assert epsilon(BEFORE_EPS_ZERO, TOTAL, 0.5) > 0 and epsilon(AFTER_EPS_ZERO, TOTAL, 0.5) == 0
    params = {}
    for mode in MASKED_REPLAY_MODES:
        model = hand_made_agent(algo, mode, BEFORE_EPS_ZERO)
        train_hand_made(model, gradient_steps=4)
        assert model.map_calls > 0 and not model.actor_batches  # every mode maps; drop drops nothing
        params[mode] = model.policy.state_dict()
    for mode in ("raw", "drop"):
        for name, value in params["mapped"].items():
            assert th.equal(value, params[mode][name]), (mode, name)
    # The same replay after eps = 0 separates the modes: the comparison above is not vacuous.
    after = hand_made_agent(algo, "raw", AFTER_EPS_ZERO)
    train_hand_made(after, gradient_steps=4)
    assert any(not th.equal(v, after.policy.state_dict()[k]) for k, v in params["raw"].items())


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_mapped_keeps_mapping_old_masked_transitions_after_eps_reaches_zero(algo: str) -> None:
    model = hand_made_agent(algo, "mapped", AFTER_EPS_ZERO)
    train_hand_made(model, gradient_steps=4)
    assert model.map_calls >= 4 * 2  # target and actor loss, at every gradient step
    assert model.logger.name_to_value["camel/replay_masked_fraction"] > 0


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_raw_never_calls_the_map_after_eps_reaches_zero(algo: str) -> None:
    model = hand_made_agent(algo, "raw", AFTER_EPS_ZERO)
    train_hand_made(model, gradient_steps=4)
    assert model.map_calls == 0
    assert model.logger.name_to_value["camel/replay_masked_fraction"] > 0  # masked rows were sampled


def one_step_plain_actor_loss(model: Any) -> float:
    """One update of `model`; returns -Q1(o, actor(o)) on the unmasked observation, by hand, with
    the actor before the update and the critic after its step (TD3's actor loss on that o)."""
    actor_before = copy.deepcopy(model.actor)
    train_hand_made(model, gradient_steps=1)
    obs = th.as_tensor(OBS_UNMASKED)[None]
    with th.no_grad():
        return -float(model.critic.q1_forward(obs, actor_before(obs)))


def test_raw_actor_loss_is_the_plain_loss_on_the_raw_actions() -> None:
    # Every transition starts in the same observation, so TD3's actor loss over any batch is
    # -Q1(o, actor(o)) with the actor before the update and the critic after its step.
    model = hand_made_agent("td3", "raw", AFTER_EPS_ZERO, masked_obs=OBS_UNMASKED)
    expected = one_step_plain_actor_loss(model)
    assert model.logger.name_to_value["train/actor_loss"] == pytest.approx(expected, rel=1e-5)
    mapped = hand_made_agent("td3", "mapped", AFTER_EPS_ZERO, masked_obs=OBS_UNMASKED)
    train_hand_made(mapped, gradient_steps=1)
    assert mapped.logger.name_to_value["train/actor_loss"] != pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("algo", ["td3", "sac"])
def test_drop_never_gives_the_actor_a_masked_transition(algo: str) -> None:
    model = hand_made_agent(algo, "drop", AFTER_EPS_ZERO)
    train_hand_made(model, gradient_steps=4)
    assert len(model.actor_batches) == 4  # half of every critic batch is masked: each was refilled
    for batch in model.actor_batches:
        assert len(batch.observations) == 16 and not batch.masked.any()
        assert th.equal(batch.observations, th.as_tensor(OBS_UNMASKED).expand(16, 3))
    assert model.map_calls == 0  # the critic's targets are raw too
    assert model.logger.name_to_value["camel/replay_masked_fraction"] > 0  # the critic saw them


def test_drop_actor_loss_is_the_loss_on_unmasked_observations_only() -> None:
    model = hand_made_agent("td3", "drop", AFTER_EPS_ZERO)
    expected = one_step_plain_actor_loss(model)
    assert model.logger.name_to_value["train/actor_loss"] == pytest.approx(expected, rel=1e-5)
