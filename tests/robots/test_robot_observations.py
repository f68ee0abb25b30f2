"""Observation and action functions: batched == single, layout sizes, noise, gravity, action mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.robots import (
    G1_SPEC,
    GO2_SPEC,
    LOCOMOTION_TERMS,
    ObsTerm,
    RobotSpec,
    RobotState,
    action_to_joint_targets,
    build_observation,
    joint_targets_to_action,
    observation_layout,
    observation_size,
)
from robolearn.robots.observations import projected_gravity, quat_rotate_inverse

SPECS = [GO2_SPEC, G1_SPEC]


def _random_states(spec: RobotSpec, batch: int, seed: int = 0) -> RobotState:
    rng = np.random.default_rng(seed)
    n = spec.num_joints
    quat = rng.normal(size=(batch, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    return RobotState(
        joint_pos=spec.default_pos_array + rng.normal(scale=0.3, size=(batch, n)),
        joint_vel=rng.normal(scale=3.0, size=(batch, n)),
        base_quat=quat,
        gyro=rng.normal(size=(batch, 3)),
        command=rng.uniform(-1, 1, size=(batch, 3)),
        last_action=rng.normal(size=(batch, n)),
    )


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_batched_and_single_observations_are_identical(spec: RobotSpec) -> None:
    states = _random_states(spec, batch=7)
    states.validate(spec)
    batched = build_observation(states, spec)
    assert batched.shape == (7, observation_size(spec)) and batched.dtype == np.float32
    for i in range(7):
        single = states.index(i)
        single.validate(spec)
        np.testing.assert_array_equal(build_observation(single, spec), batched[i])
    restacked = RobotState.stack([states.index(i) for i in range(7)])
    np.testing.assert_array_equal(build_observation(restacked, spec), batched)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_layout_sizes_sum_to_observation_length(spec: RobotSpec) -> None:
    layout = observation_layout(spec)
    obs = build_observation(RobotState.default(spec), spec)
    assert sum(e.size for e in layout) == obs.shape[-1] == observation_size(spec)
    assert [e.start for e in layout] == list(np.cumsum([0] + [e.size for e in layout[:-1]]))
    assert [e.name for e in layout] == [t.name for t in LOCOMOTION_TERMS]
    assert all(len(e.scale) == e.size for e in layout)
    # 3 + 3 + 3 + 3 x joints, the unitree_rl_gym proprioceptive layout.
    assert obs.shape[-1] == 9 + 3 * spec.num_joints
    # The layout survives JSON and rebuilds the same terms on the deploy side.
    entries = json.loads(json.dumps([e.to_dict() for e in layout]))
    rebuilt = tuple(ObsTerm.from_dict(e) for e in entries)
    np.testing.assert_array_equal(build_observation(RobotState.default(spec), spec, rebuilt), obs)


def test_each_term_is_scaled_where_the_layout_says() -> None:
    state = _random_states(GO2_SPEC, batch=1).index(0)
    obs = build_observation(state, GO2_SPEC)
    by_name = {e.name: e for e in observation_layout(GO2_SPEC)}
    vel = by_name["joint_vel"]
    np.testing.assert_allclose(obs[vel.start : vel.start + vel.size], 0.05 * state.joint_vel, rtol=1e-6)
    cmd = by_name["commands"]
    np.testing.assert_allclose(obs[cmd.start : cmd.start + 3], state.command * [2.0, 2.0, 0.25], rtol=1e-6)
    pos = by_name["joint_pos_rel"]
    np.testing.assert_allclose(
        obs[pos.start : pos.start + pos.size],
        state.joint_pos - GO2_SPEC.default_pos_array,
        rtol=1e-6,
        atol=1e-7,
    )


def test_default_state_observes_level_gravity_and_zero_offsets() -> None:
    obs = build_observation(RobotState.default(G1_SPEC), G1_SPEC)
    by_name = {e.name: e for e in observation_layout(G1_SPEC)}
    g = by_name["projected_gravity"]
    np.testing.assert_allclose(obs[g.start : g.start + 3], [0.0, 0.0, -1.0])
    assert np.count_nonzero(obs) == 1


def test_projected_gravity_of_a_pitched_base() -> None:
    # Nose down by 90 degrees about +y: gravity points along the body's +x.
    angle = np.pi / 2
    quat = np.array([np.cos(angle / 2), 0.0, np.sin(angle / 2), 0.0])
    state = RobotState.default(GO2_SPEC)
    pitched = RobotState(state.joint_pos, state.joint_vel, quat, state.gyro, state.command, state.last_action)
    np.testing.assert_allclose(projected_gravity(pitched, GO2_SPEC), [1.0, 0.0, 0.0], atol=1e-12)
    # An unnormalised quaternion gives the same unit vector.
    np.testing.assert_allclose(quat_rotate_inverse(3.0 * quat, [0, 0, -1]), [1.0, 0.0, 0.0], atol=1e-12)


def test_noise_comes_only_from_the_given_generator() -> None:
    states = _random_states(GO2_SPEC, batch=4)
    clean = build_observation(states, GO2_SPEC)
    a = build_observation(states, GO2_SPEC, rng=np.random.default_rng(3))
    b = build_observation(states, GO2_SPEC, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, clean)
    # Noise stays inside scale * noise for each term; noiseless terms are untouched.
    for e in observation_layout(GO2_SPEC):
        part = slice(e.start, e.start + e.size)
        bound = np.asarray(e.scale) * e.noise + 1e-5
        assert np.all(np.abs(a[:, part] - clean[:, part]) <= bound)


def test_clip_and_bad_terms() -> None:
    states = _random_states(GO2_SPEC, batch=2)
    assert np.abs(build_observation(states, GO2_SPEC, clip=0.5)).max() <= 0.5
    with pytest.raises(
        UserError, match="unknown observation term 'joint_pos_rell' \\(did you mean joint_pos_rel"
    ):
        ObsTerm("joint_pos_rell")
    with pytest.raises(UserError, match="has 2 scales but 3 values"):
        observation_layout(GO2_SPEC, [ObsTerm("commands", scale=(1.0, 2.0))])
    with pytest.raises(UserError, match="listed twice"):
        observation_layout(GO2_SPEC, [ObsTerm("joint_vel"), ObsTerm("joint_vel")])
    bad = RobotState.default(GO2_SPEC)
    with pytest.raises(UserError, match="joint_pos must end in size 12"):
        RobotState(
            bad.joint_pos[:5], bad.joint_vel, bad.base_quat, bad.gyro, bad.command, bad.last_action
        ).validate(GO2_SPEC)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_actions_map_to_pd_targets(spec: RobotSpec) -> None:
    zero = action_to_joint_targets(np.zeros(spec.num_joints), spec)
    np.testing.assert_array_equal(zero, spec.default_pos_array)
    action = np.random.default_rng(2).normal(size=(3, spec.num_joints))
    targets = action_to_joint_targets(action, spec)
    np.testing.assert_allclose(targets, spec.default_pos_array + spec.action_scale_array * action)
    np.testing.assert_allclose(joint_targets_to_action(targets, spec), action)
    for i in range(3):
        np.testing.assert_array_equal(action_to_joint_targets(action[i], spec), targets[i])
    clipped = action_to_joint_targets(np.full(spec.num_joints, 1e9), spec, clip=1.0)
    np.testing.assert_allclose(clipped, spec.default_pos_array + spec.action_scale_array)
    with pytest.raises(UserError, match=f"action must end in size {spec.num_joints}"):
        action_to_joint_targets(np.zeros(spec.num_joints + 1), spec)


def test_gait_clock_term_reads_the_phase_batched_and_single() -> None:
    import dataclasses

    terms = (*LOCOMOTION_TERMS, ObsTerm("gait_clock"))
    phase = np.array([[0.0], [0.25], [0.5], [0.875]])
    states = dataclasses.replace(_random_states(GO2_SPEC, batch=4), gait_phase=phase)
    states.validate(GO2_SPEC)
    obs = build_observation(states, GO2_SPEC, terms)
    assert obs.shape == (4, 47) and observation_layout(GO2_SPEC, terms)[-1].start == 45
    angle = 2 * np.pi * phase[:, 0]
    np.testing.assert_allclose(obs[:, 45:], np.stack((np.sin(angle), np.cos(angle)), axis=1), atol=1e-7)
    np.testing.assert_array_equal(obs[:, :45], build_observation(states, GO2_SPEC))
    for i in range(4):
        np.testing.assert_array_equal(build_observation(states.index(i), GO2_SPEC, terms), obs[i])
    np.testing.assert_array_equal(
        build_observation(RobotState.stack([states.index(i) for i in range(4)]), GO2_SPEC, terms), obs
    )
    # A state without a phase cannot build the term; a phase of the wrong size is named.
    with pytest.raises(UserError, match=r"gait_clock observation term needs RobotState\.gait_phase"):
        build_observation(_random_states(GO2_SPEC, batch=4), GO2_SPEC, terms)
    with pytest.raises(UserError, match=r"RobotState.gait_phase must end in size 1"):
        dataclasses.replace(states, gait_phase=np.zeros((4, 2))).validate(GO2_SPEC)


def test_term_clip_applies_after_noise_and_before_scale() -> None:
    # Isaac Lab's order: raw + noise, clipped to the term's [lo, hi], then scaled.
    state = RobotState.default(GO2_SPEC)
    state = RobotState(**{**state.__dict__, "gyro": np.array([3.0, -0.1, -4.0])})
    term = ObsTerm("base_ang_vel", scale=0.25, noise=0.5, clip=(-1.0, 1.0))
    rng, twin = np.random.default_rng(3), np.random.default_rng(3)
    obs = build_observation(state, GO2_SPEC, [term], rng=rng)
    noise = twin.uniform(-0.5, 0.5, size=3)
    expected = np.clip(state.gyro + noise, -1.0, 1.0) * 0.25
    np.testing.assert_allclose(obs, expected.astype(np.float32))
    assert obs[0] == np.float32(0.25) and obs[2] == np.float32(-0.25)  # clipped raw 1.0, not 0.25*3 clipped
    # Round trip through the layout and the contract form; no clip key when there is none.
    entry = observation_layout(GO2_SPEC, [term])[0].to_dict()
    assert entry["clip"] == [-1.0, 1.0] and ObsTerm.from_dict(entry).clip == term.clip
    assert "clip" not in ObsTerm("base_ang_vel").to_dict()
    assert "clip" not in observation_layout(GO2_SPEC, [ObsTerm("commands")])[0].to_dict()
    for bad in ((1.0, -1.0), (0.0, float("nan"))):
        with pytest.raises(UserError, match="clip"):
            ObsTerm("base_ang_vel", clip=bad)


def test_base_lin_vel_term_reads_the_state_or_refuses_in_one_line() -> None:
    state = RobotState.default(GO2_SPEC, batch_size=2)
    with pytest.raises(UserError, match=r"base_lin_vel.*LowState") as caught:
        build_observation(state, GO2_SPEC, [ObsTerm("base_lin_vel", scale=2.0)])
    assert "\n" not in str(caught.value)
    v = np.array([[0.5, -0.1, 0.02], [1.0, 0.0, 0.0]])
    moving = RobotState(**{**state.__dict__, "base_lin_vel": v})
    moving.validate(GO2_SPEC)
    obs = build_observation(moving, GO2_SPEC, [ObsTerm("base_lin_vel", scale=2.0)])
    np.testing.assert_allclose(obs, (2.0 * v).astype(np.float32))
    np.testing.assert_array_equal(moving.index(1).base_lin_vel, v[1])
    assert RobotState.stack([moving.index(0), moving.index(1)]).base_lin_vel.shape == (2, 3)  # type: ignore[union-attr]
    with pytest.raises(UserError, match="base_lin_vel must end in size 3"):
        RobotState(**{**state.__dict__, "base_lin_vel": np.zeros((2, 2))}).validate(GO2_SPEC)
