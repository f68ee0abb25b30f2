"""Property tests of the deploy safety path: whatever comes in, what goes out is finite and in limits.

Two levels, for the Go2 and the G1:
- CommandLimiter alone: any requested target and gains, any measured state (NaN, inf, 1e300 included);
- the runtime's guard + limiter path (Controller.policy_tick then command_tick): any policy output and
  any robot state, starting in POLICY.

The oracle is written out here with plain numpy, not check_command(): a bug that weakens the checker
and the limiter together must still fail these tests (test_deploy_commands.py checks the checker).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("hypothesis")

from deploy_helpers import REFERENCE
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from robolearn.deploy.artifact import PolicyContract, load_artifact
from robolearn.deploy.backends.base import StateSample
from robolearn.deploy.commands import CommandKind, CommandLimiter, MotorCommand, check_command
from robolearn.deploy.operator import OperatorInput
from robolearn.deploy.runtime import Controller, RuntimeOptions
from robolearn.deploy.safety import GuardConfig, Guards, SafetyState
from robolearn.deploy.sim_bridge import MODE_MACHINE
from robolearn.robots import G1_SPEC, GO2_SPEC, RobotSpec
from robolearn.robots.observations import LOCOMOTION_TERMS

SPECS = {"go2": GO2_SPEC, "g1": G1_SPEC}
SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e6, -1e6, 0.0, -0.0, 5e-324]
# Few examples and no deadline: the whole file stays within a few seconds on a shared CPU, and
# no example database is written into the working tree. Under benchmarks/mutation_safety.py the
# examples are fixed (same figures on every run) and a failure is not shrunk (a kill is a kill).
_MUTATION_RUN = os.environ.get("ROBOLEARN_MUTATION_RUN") == "1"
FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=_MUTATION_RUN,
    phases=(Phase.explicit, Phase.generate) if _MUTATION_RUN else tuple(Phase),
)

# Relative slack of the torque oracle: the limiter computes its window in float64; it may land one
# rounding step beyond it, never more.
_RTOL = 1e-9


def _any_values(n: int, typical: float) -> st.SearchStrategy[np.ndarray]:
    """Arrays of n floats: some realistic, some special (NaN, inf, huge, subnormal), some anything."""
    elements = st.one_of(
        st.floats(-typical, typical),
        st.sampled_from(SPECIAL),
        st.floats(allow_nan=True, allow_infinity=True),
    )
    return hnp.arrays(np.float64, (n,), elements=elements)


def _clean_values(n: int, typical: float) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(np.float64, (n,), elements=st.floats(-typical, typical))


def _values(n: int, typical: float) -> st.SearchStrategy[np.ndarray]:
    """Either an all-finite, plausible array or one with anything in it (the guards see both)."""
    return st.one_of(_clean_values(n, typical), _any_values(n, typical))


def assert_within_limits(
    spec: RobotSpec, cmd: MotorCommand, joint_pos: np.ndarray, joint_vel: np.ndarray
) -> None:
    """The command is finite, in the joint range and gain limits, and its implied torque is bounded."""
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
    for name, value in (("q", cmd.q), ("kp", cmd.kp), ("kd", cmd.kd)):
        assert value.shape == (spec.num_joints,), name
        assert np.all(np.isfinite(value)), f"{name} not finite: {value}"
    assert np.all(cmd.q >= lower) and np.all(cmd.q <= upper), cmd.q
    assert np.all(cmd.kp >= 0) and np.all(cmd.kp <= spec.kp_array), cmd.kp
    assert np.all(cmd.kd >= 0) and np.all(cmd.kd <= spec.kd_array), cmd.kd
    q = np.asarray(joint_pos, dtype=np.float64)
    dq = np.asarray(joint_vel, dtype=np.float64)
    known = np.isfinite(q) & np.isfinite(dq)
    # Stiffness is never applied to a joint whose state is unknown.
    assert np.all(cmd.kp[~known] == 0), cmd.kp
    with np.errstate(invalid="ignore", over="ignore"):
        torque = cmd.kp * (cmd.q - q) - cmd.kd * dq
    bound = spec.torque_limit_array * (1 + _RTOL)
    assert np.all(np.abs(torque[known]) <= bound[known]), (torque, spec.torque_limit_array)
    # Damping alone (what DAMP and ESTOP send) is bounded even where the position is unknown.
    speed = np.where(np.isfinite(dq), np.abs(dq), 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        assert np.all(cmd.kd * speed <= bound), (cmd.kd, dq)


# -- the limiter alone ---------------------------------------------------------------------------------
@pytest.mark.parametrize("robot", SPECS)
def test_limiter_output_is_finite_and_in_limits_for_any_request_and_state(robot: str) -> None:
    spec = SPECS[robot]
    limiter = CommandLimiter(spec)
    n = spec.num_joints

    @FAST
    @given(
        target=_values(n, 4.0),
        kp=st.one_of(st.none(), _values(n, 300.0)),
        kd=st.one_of(st.none(), _values(n, 10.0)),
        q_offset=_values(n, 3.0),
        dq=_values(n, 40.0),
    )
    def check(
        target: np.ndarray, kp: np.ndarray | None, kd: np.ndarray | None, q_offset: np.ndarray, dq: np.ndarray
    ) -> None:
        with np.errstate(over="ignore", invalid="ignore"):
            q = spec.default_pos_array + q_offset
        # No RuntimeWarning either: the limiter runs 500 times a second and NaN/inf/0 are expected input.
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            pd = limiter.pd(target, q, dq, kp, kd)
            damp = limiter.damp(q, dq)
            passive = limiter.passive(q)
            assert check_command(spec, pd.q, pd.kp, pd.kd, joint_pos=q, joint_vel=dq) == []
            assert check_command(spec, damp.q, damp.kp, damp.kd, joint_pos=q, joint_vel=dq) == []
        assert pd.kind == CommandKind.PD and 0 <= pd.limited <= n
        assert_within_limits(spec, pd, q, dq)
        assert damp.kind == CommandKind.DAMP and np.all(damp.kp == 0)
        assert_within_limits(spec, damp, q, dq)
        assert passive.kind == CommandKind.PASSIVE and np.all(passive.kp == 0) and np.all(passive.kd == 0)
        assert_within_limits(spec, passive, q, dq)

    check()


@pytest.mark.parametrize("robot", SPECS)
def test_limiter_keeps_a_request_that_breaks_no_limit(robot: str) -> None:
    """The other half of the property: the limiter changes nothing it need not change."""
    spec = SPECS[robot]
    limiter = CommandLimiter(spec)
    n = spec.num_joints
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)

    @FAST
    @given(
        target_frac=hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 1.0)),
        q_frac=hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 1.0)),
        gain_frac=st.floats(0.0, 1.0),
    )
    def check(target_frac: np.ndarray, q_frac: np.ndarray, gain_frac: float) -> None:
        target = np.clip(lower + target_frac * (upper - lower), lower, upper)
        q = np.clip(lower + q_frac * (upper - lower), lower, upper)
        kp, kd = spec.kp_array * gain_frac, spec.kd_array * gain_frac
        torque = kp * (target - q)
        cmd = limiter.pd(target, q, np.zeros(n), kp, kd)
        inside = np.abs(torque) <= spec.torque_limit_array
        np.testing.assert_array_equal(cmd.q[inside], target[inside])
        # Only rounding may touch the gains (the window edge recomputed in float64).
        np.testing.assert_allclose(cmd.kp, kp, rtol=1e-12)
        np.testing.assert_array_equal(cmd.kd, kd)
        # A target beyond the torque window is moved to the window's edge, nothing further.
        np.testing.assert_allclose(
            np.abs(kp * (cmd.q - q))[~inside], spec.torque_limit_array[~inside], rtol=1e-9
        )
        assert cmd.limited == int(np.count_nonzero(~np.isclose(cmd.q, target, rtol=0, atol=1e-12)))
        assert_within_limits(spec, cmd, q, np.zeros(n))

    check()


# -- the runtime's guard + limiter path ----------------------------------------------------------------
DT = 0.002
BINDINGS = {"start": "start", "A": "policy", "select": "damp"}


@functools.cache
def _contract(spec: RobotSpec, action_clip: float | None, subset: bool = False) -> PolicyContract:
    """The reference contract made over for this robot: the generic locomotion terms, no normalisation.

    subset: an imported policy's contract that commands the first half of the joints, in reverse
    order (policy_joints); the runtime scatters its output into robot order before every guard.
    """
    reference = load_artifact(REFERENCE).contract
    joints = tuple(reversed(spec.joint_names[: spec.num_joints // 2])) if subset else None
    return dataclasses.replace(
        reference,
        robot=spec,
        terms=LOCOMOTION_TERMS,
        normalization=None,
        action_clip=action_clip,
        policy_joints=joints,
    )


def _sample(
    spec: RobotSpec,
    t: float,
    joint_pos: np.ndarray,
    joint_vel: np.ndarray,
    quat: np.ndarray,
    gyro: np.ndarray,
) -> StateSample:
    # The hardware revision the spec describes (unitree_hg robots report it in every LowState).
    mode = MODE_MACHINE.get(spec.name, 0)
    return StateSample(joint_pos, joint_vel, quat, gyro, tick=int(t * 1000), received=t, mode_machine=mode)


def _controller_in_policy(
    spec: RobotSpec, contract: PolicyContract, policy: Callable[[np.ndarray], np.ndarray]
) -> tuple[Controller, float]:
    """A Controller that a normal session brought to POLICY (ramp and hold of a few ticks)."""
    c = Controller(
        spec,
        RuntimeOptions(command_dt=DT, policy_dt=DT, ramp_s=DT, autostart=True, autopolicy_s=DT),
        Guards(spec, GuardConfig()),
        CommandLimiter(spec),
        OperatorInput(BINDINGS, contract.command_ranges),
        contract,
        policy,
    )
    c.guards.set_action_limit(contract.action_clip)
    upright = np.array([1.0, 0.0, 0.0, 0.0])
    t = 0.0
    for _ in range(6):
        c.on_state(
            _sample(spec, t, spec.default_pos_array.copy(), np.zeros(spec.num_joints), upright, np.zeros(3))
        )
        c.policy_tick(t)
        c.command_tick(t)
        t += DT
    assert c.machine.state is SafetyState.POLICY, c.machine.state
    return c, t


def _plausible_state(spec: RobotSpec) -> st.SearchStrategy[tuple[np.ndarray, ...]]:
    """(joint_pos, joint_vel, quat, gyro) inside every guard's limits: what a robot standing sends."""
    n = spec.num_joints
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
    unit = hnp.arrays(np.float64, (n,), elements=st.floats(0.0, 1.0))
    tilt = st.tuples(st.floats(0.0, np.deg2rad(40.0)), st.floats(0.0, 2 * np.pi))
    return st.tuples(
        unit.map(lambda u: np.clip(lower + u * (upper - lower), lower, upper)),
        unit.map(lambda u: (2 * u - 1) * 0.9 * np.asarray(spec.velocity_limits)),
        tilt.map(
            lambda a: np.array(
                [np.cos(a[0] / 2), np.sin(a[0] / 2) * np.cos(a[1]), np.sin(a[0] / 2) * np.sin(a[1]), 0.0]
            )
        ),
        _clean_values(3, 5.0),
    )


def _any_state(spec: RobotSpec) -> st.SearchStrategy[tuple[np.ndarray, ...]]:
    """(joint_pos, joint_vel, quat, gyro) with anything in them: out of range, NaN, inf, 1e300."""
    n = spec.num_joints
    return st.tuples(
        _values(n, 3.0).map(lambda off: _add(spec.default_pos_array, off)),
        _values(n, 40.0),
        st.one_of(hnp.arrays(np.float64, (4,), elements=st.floats(-1.0, 1.0)), _any_values(4, 1.0)),
        _values(3, 10.0),
    )


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        return a + b


@pytest.mark.parametrize("joints", ["all", "subset"])
@pytest.mark.parametrize("clip", [5.0, None], ids=["clip5", "noclip"])
@pytest.mark.parametrize("robot", SPECS)
@FAST
@given(data=st.data())
def test_runtime_path_sends_finite_commands_in_limits_for_any_action_and_state(
    robot: str, clip: float | None, joints: str, data: st.DataObject
) -> None:
    spec = SPECS[robot]
    contract = _contract(spec, clip, subset=joints == "subset")
    # The network commands contract.policy_index (in its order); `action` below is what reaches the
    # guard in robot order: the drawn values on those joints, 0 on the joints the policy leaves alone.
    idx = contract.policy_index
    n = spec.num_joints
    # Half the examples are a nominal session (a plausible state, an action within the guard's
    # limit) so the POLICY branch is exercised as much as the fault branches.
    nominal = data.draw(st.booleans(), label="nominal")
    if nominal:
        q, dq, quat, gyro = data.draw(_plausible_state(spec), label="state")
        limit = 2.0 * (clip if clip is not None else 1.0)
        action = data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-limit, limit)), label="action")
    else:
        q, dq, quat, gyro = data.draw(_any_state(spec), label="state")
        action = data.draw(_values(n, 30.0), label="action")
    command = data.draw(hnp.arrays(np.float64, (3,), elements=st.floats(-1.0, 1.0)), label="command")
    output = {"action": np.zeros(n)}  # zeros while the session reaches POLICY
    c, t = _controller_in_policy(spec, contract, lambda x: output["action"][idx].copy())
    output["action"] = action
    action = contract.full_action(action[idx])
    c.operator.command = command
    # Two policy periods: the first command tick acts on this state and action (or their fault),
    # the second one sends from wherever the machine went (DAMP after a fault).
    for _ in range(2):
        c.on_state(_sample(spec, t, q, dq, quat, gyro))
        c.policy_tick(t)
        cmd = c.command_tick(t)
        assert_within_limits(spec, cmd, q, dq)
        if c.machine.state is SafetyState.POLICY:
            assert cmd.kind == CommandKind.PD
        else:
            assert c.machine.state is SafetyState.DAMP and cmd.kind == CommandKind.DAMP
            assert np.all(cmd.kp == 0) and c.faults
        t += DT
    bad_state = c.guards.state(q, dq, quat, gyro) is not None
    with np.errstate(invalid="ignore"):
        bad_action = not np.all(
            np.abs(action) <= c.guards.config.action_limit_multiple * c.guards.action_limit
        )
    event(f"ended in {c.machine.state.name}")
    if bad_state or bad_action:
        # A state the guards refuse or an action beyond its limit (NaN and inf included) never
        # reaches the motors as stiffness: the session is damping, with the fault recorded.
        assert c.machine.state is SafetyState.DAMP and c.faults
    else:
        # Nothing wrong: the policy keeps the motors, its clipped action as the (limited) targets.
        assert c.machine.state is SafetyState.POLICY and not c.faults, c.faults
        clipped = action if clip is None else np.clip(action, -clip, clip)
        expected = c.limiter.pd(spec.default_pos_array + spec.action_scale_array * clipped, q, dq)
        np.testing.assert_array_equal(cmd.q, expected.q)
        np.testing.assert_array_equal(cmd.kp, expected.kp)
