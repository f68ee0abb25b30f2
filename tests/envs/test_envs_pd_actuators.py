"""The PD law inside MuJoCo (pd_actuator_model) against the numpy reference law (pd_torque).

The reference is what the backends did before: Unitree's motor actuators on the MJCF's own
integrator, with pd_torque evaluated in numpy before every physics step and sent as ctrl = tau / gear.
"""

from __future__ import annotations

import copy

import mujoco
import numpy as np
import pytest

from robolearn.deploy.simulation import RobotSimulation
from robolearn.envs.backends.batch_backend import BatchBackend
from robolearn.envs.backends.mujoco_backend import MujocoBackend
from robolearn.envs.vector import make_batched_env
from robolearn.errors import UserError
from robolearn.robots.actuators import pd_actuator_params, pd_torque
from robolearn.robots.g1 import G1_SPEC
from robolearn.robots.g1_29 import G1_29_SPEC
from robolearn.robots.go2 import GO2_SPEC
from robolearn.robots.model import (
    JointIndexMap,
    joint_index_map,
    load_model,
    pd_actuator_model,
    set_default_pose,
)
from robolearn.robots.spec import RobotSpec

SPECS = {"go2": GO2_SPEC, "g1": G1_SPEC, "g1_29dof": G1_29_SPEC}
# Rounding differences (kp*q* - kp*q against kp*(q* - q)) stay near 1e-12 over these rollouts,
# contacts and falls included; a different law or integrator would be off by 1e-3 or more.
TOLERANCE = 1e-9


def _start(
    model: mujoco.MjModel, spec: RobotSpec, index: JointIndexMap, rng: np.random.Generator
) -> np.ndarray:
    data = mujoco.MjData(model)
    set_default_pose(model, data, spec, index)
    data.qpos[index.qpos_adr] += rng.uniform(-0.1, 0.1, spec.num_joints)
    data.qvel[index.qvel_adr] = rng.uniform(-1, 1, spec.num_joints)
    state = np.empty(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(model, data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    return state


def _reference(
    model: mujoco.MjModel,
    index: JointIndexMap,
    state: np.ndarray,
    targets: np.ndarray,
    kp: np.ndarray,
    kd: np.ndarray,
    limit: np.ndarray,
    substeps: int,
) -> tuple[np.ndarray, np.ndarray]:
    """qpos after each control step and the last substep's torque, with the numpy law."""
    data = mujoco.MjData(model)
    mujoco.mj_setState(model, data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    qpos, torque = [], []
    for target in targets:
        for _ in range(substeps):
            tau = pd_torque(target, data.qpos[index.qpos_adr], data.qvel[index.qvel_adr], kp, kd, limit)
            data.ctrl[index.actuator_ids] = index.ctrl_from_torque(tau)
            mujoco.mj_step(model, data)
        qpos.append(data.qpos.copy())
        torque.append(tau)
    return np.array(qpos), np.array(torque)


def _targets(spec: RobotSpec, rng: np.random.Generator, steps: int) -> np.ndarray:
    # Up to 1.5 x the peak torque at the default pose: joints saturate and the robot moves, stumbles and (the G1s) falls.
    return spec.default_pos_array + rng.uniform(-6.0, 6.0, (steps, spec.num_joints)) * spec.action_scale_array


def test_actuator_form_gives_pd_torque_for_any_state_and_command() -> None:
    rng = np.random.default_rng(0)
    shape = (500, 12)
    q, dq = rng.uniform(-3, 3, shape), rng.uniform(-30, 30, shape)
    target, kp, kd = rng.uniform(-3, 3, shape), rng.uniform(0, 100, shape), rng.uniform(0, 5, shape)
    vel, ff, limit = rng.uniform(-5, 5, shape), rng.uniform(-10, 10, shape), rng.uniform(5, 50, shape)
    # pd_torque's guard cases: NaN and infinite targets, a huge target, NaN gains, a zero kp with an
    # infinite target (0 * inf is NaN: limp).
    target[0, :4] = (np.nan, np.inf, -np.inf, 1e12)
    kp[1, 0], kd[1, 1], target[1, 2], kp[1, 2] = np.nan, np.nan, np.inf, 0.0
    p = pd_actuator_params(target, kp, kd, limit, vel, ff)
    force = np.clip(
        p.gain * p.ctrl + p.bias[..., 0] + p.bias[..., 1] * q + p.bias[..., 2] * dq, -p.limit, p.limit
    )
    expected = pd_torque(target, q, dq, kp, kd, limit, vel, ff)
    np.testing.assert_allclose(force, expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(force[0, :4], [0.0, limit[0, 1], -limit[0, 2], limit[0, 3]])
    assert np.all(np.abs(p.ctrl) <= 1e9) and np.isfinite(p.bias).all()  # nothing MuJoCo would reject


@pytest.mark.parametrize("robot", sorted(SPECS))
def test_mujoco_pd_follows_the_numpy_law_trajectory(robot: str) -> None:
    spec = SPECS[robot]
    motor = load_model(spec)
    index = joint_index_map(motor, spec)
    rng = np.random.default_rng(1)
    state = _start(motor, spec, index, rng)
    targets = _targets(spec, rng, 100)  # 2 s of control
    kp, kd, limit = spec.kp_array, spec.kd_array, spec.torque_limit_array
    ref_qpos, ref_tau = _reference(motor, index, state, targets, kp, kd, limit, spec.decimation)

    # Euler in place of the MJCF's implicitfast changes nothing for these models: bit-identical.
    euler = copy.copy(motor)
    euler.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER
    euler_qpos, _ = _reference(euler, index, state, targets, kp, kd, limit, spec.decimation)
    np.testing.assert_array_equal(euler_qpos, ref_qpos)

    pd = pd_actuator_model(motor, spec)
    data = mujoco.MjData(pd)
    mujoco.mj_setState(pd, data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    qpos, tau = [], []
    for target in targets:
        data.ctrl[index.actuator_ids] = target
        mujoco.mj_step(pd, data, nstep=spec.decimation)
        qpos.append(data.qpos.copy())
        tau.append(data.actuator_force[index.actuator_ids].copy())
    assert data.warning[mujoco.mjtWarning.mjWARN_BADCTRL].number == 0
    np.testing.assert_allclose(np.array(qpos), ref_qpos, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(np.array(tau), ref_tau, rtol=0, atol=1e3 * TOLERANCE)
    assert np.ptp(ref_qpos[:, 2]) > 0.02  # the base moved: the comparison covers contacts
    assert np.any(np.isclose(np.abs(ref_tau), limit))  # and saturated torques


@pytest.mark.parametrize("backend", ["batch", "mujoco"])
def test_backends_keep_per_env_gains_limits_and_the_returned_torque(backend: str) -> None:
    spec = GO2_SPEC
    motor = load_model(spec)
    index = joint_index_map(motor, spec)
    n, steps = 5, 40
    rng = np.random.default_rng(2)
    state = _start(motor, spec, index, rng)
    kp = np.repeat(spec.kp_array[None], n, axis=0)
    kd = np.repeat(spec.kd_array[None], n, axis=0)
    limit = np.repeat(spec.torque_limit_array[None], n, axis=0)
    kp[2] *= 1.2  # env 2: stiffer (kp_scale), env 3: softer damping, env 4: 1.1 x strength
    kd[3] *= 0.8
    kp[4], kd[4], limit[4] = kp[4] * 1.1, kd[4] * 1.1, limit[4] * 1.1
    targets = np.repeat(_targets(spec, rng, steps)[:, None], n, axis=1)
    targets[5:10, 1, 4] = np.nan  # a limp joint for a while, as pd_torque makes it
    targets[10:12, 1, 5] = np.inf

    sim: BatchBackend | MujocoBackend
    sim = (
        BatchBackend(motor, spec, n, bodies=(), threads=2)
        if backend == "batch"
        else MujocoBackend(motor, spec, n, ())
    )
    sim.set_physics_state(np.repeat(state[None], n, axis=0))
    qpos, tau = [], []
    for target in targets:
        tau.append(sim.step(target, kp, kd, limit))
        frame = sim.frame()
        qpos.append(np.concatenate((frame.root_pos, frame.root_quat, frame.joint_pos), axis=1))
    got_qpos, got_tau = np.array(qpos), np.array(tau)
    r = index.root_qpos_adr
    columns = np.concatenate((np.arange(r, r + 7), index.qpos_adr))

    # Envs 0 and 1 share everything until env 1's NaN target: identical, not merely close.
    np.testing.assert_array_equal(got_qpos[:5, 0], got_qpos[:5, 1])
    assert np.abs(got_qpos[-1, 0] - got_qpos[-1, 1]).max() > 1e-6
    assert np.all(got_tau[5:10, 1, 4] == 0.0) and np.all(got_tau[10:12, 1, 5] == limit[1, 5])
    for env in (0, 1, 2, 3, 4):
        ref_qpos, ref_tau = _reference(
            motor, index, state, targets[:, env], kp[env], kd[env], limit[env], spec.decimation
        )
        np.testing.assert_allclose(
            got_qpos[:, env], ref_qpos[:, columns], rtol=0, atol=TOLERANCE, err_msg=str(env)
        )
        # The returned torque is the last substep's, as the numpy law's was; env 4's 1.1 x limit
        # is the law's, while the motor's ctrlrange still bounds what reaches the joint.
        np.testing.assert_allclose(got_tau[:, env], ref_tau, rtol=0, atol=1e-6, err_msg=str(env))
    for env in (2, 3, 4):  # other gains: other physics
        assert np.abs(got_qpos[-1, env] - got_qpos[-1, 0]).max() > 1e-4, env
    assert np.abs(got_tau[:, 4]).max() > spec.torque_limit_array.max()  # the 1.1 x limit was reached
    sim.close()


def test_randomised_gains_reach_the_batch_actuators() -> None:
    n = 6
    venv = make_batched_env(
        "robolearn/Go2Velocity-v1",
        n,
        seed=4,
        randomization={"kp_scale": [0.8, 1.2], "motor_strength": [0.9, 1.1]},
    )
    venv.reset()
    venv.step(np.zeros((n, 12)))
    task = venv.task
    backend = task.backend
    assert isinstance(backend, BatchBackend)
    acts = backend.layout.index.actuator_ids
    gainprm = backend.batch.expanded("actuator_gainprm")
    biasprm = backend.batch.expanded("actuator_biasprm")
    forcerange = backend.batch.expanded("actuator_forcerange")
    assert gainprm is not None and biasprm is not None and forcerange is not None
    np.testing.assert_array_equal(gainprm[:, acts, 0], task.kp)
    np.testing.assert_array_equal(biasprm[:, acts, 1], -task.kp)
    np.testing.assert_array_equal(biasprm[:, acts, 2], -task.kd)
    np.testing.assert_array_equal(forcerange[:, acts, 1], task.torque_limit)
    assert len(np.unique(gainprm[:, acts[0], 0])) == n
    venv.close()


def test_deploy_simulation_runs_the_command_law_in_mujoco() -> None:
    spec = GO2_SPEC
    sim = RobotSimulation(spec, physics_dt=0.001)
    sim.reset()
    rng = np.random.default_rng(3)
    motor = load_model(spec)
    motor.opt.timestep = 0.001
    index = joint_index_map(motor, spec)
    state = np.empty(mujoco.mj_stateSize(motor, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(sim.model, sim.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    data = mujoco.MjData(motor)
    mujoco.mj_setState(motor, data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    for _ in range(20):  # commands held 20 ms each, with target velocity and feedforward
        q = spec.default_pos_array + rng.uniform(-0.5, 0.5, spec.num_joints)
        kp, kd = rng.uniform(10, 60, spec.num_joints), rng.uniform(0.5, 3, spec.num_joints)
        dq, ff = rng.uniform(-2, 2, spec.num_joints), rng.uniform(-3, 3, spec.num_joints)
        sim.set_command(q, kp, kd, dq=dq, tau=ff)
        sim.step(20)
        for _ in range(20):
            tau = pd_torque(
                q,
                data.qpos[index.qpos_adr],
                data.qvel[index.qvel_adr],
                kp,
                kd,
                spec.torque_limit_array,
                dq,
                ff,
            )
            data.ctrl[index.actuator_ids] = index.ctrl_from_torque(tau)
            mujoco.mj_step(motor, data)
        np.testing.assert_allclose(sim.data.qpos, data.qpos, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(sim.read().joint_torque, tau, rtol=0, atol=1e-6)


def test_pd_actuator_model_refuses_physics_it_would_change() -> None:
    motor = load_model(GO2_SPEC)
    rk4 = copy.copy(motor)
    rk4.opt.integrator = mujoco.mjtIntegrator.mjINT_RK4
    with pytest.raises(UserError, match="RK4 integrator"):
        pd_actuator_model(rk4, GO2_SPEC)
    fluid = copy.copy(motor)
    fluid.opt.density = 1.2
    with pytest.raises(UserError, match=r'fluid forces.*integrator="Euler"'):
        pd_actuator_model(fluid, GO2_SPEC)
    # The source model is left as it was: the warp backend and the checks still see motors.
    pd_actuator_model(motor, GO2_SPEC)
    assert motor.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    joint_index_map(motor, GO2_SPEC)
    with pytest.raises(UserError, match="not a torque motor"):
        joint_index_map(pd_actuator_model(motor, GO2_SPEC), GO2_SPEC)
