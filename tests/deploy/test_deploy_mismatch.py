"""A simulated target's physics mismatch (robolearn.deploy.mismatch): each kind acts where it says, on
the target only, from config, with one-line errors before any work."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np
import pytest

from robolearn.config.validate import compose_config
from robolearn.deploy.config import validate_deploy_config
from robolearn.deploy.mismatch import target_from_config, target_physics
from robolearn.deploy.simulation import RobotSimulation
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec

GO2 = get_robot_spec("go2")


def _standing(edits: list[dict[str, object]], seconds: float = 1.0) -> RobotSimulation:
    sim = RobotSimulation(GO2, mismatch=target_physics(GO2, edits))
    sim.reset("default")
    sim.set_command(GO2.default_pos_array, GO2.kp_array, GO2.kd_array)
    sim.settle(seconds)
    return sim


def _one_step_torque(sim: RobotSimulation, q: np.ndarray, kp: np.ndarray, kd: np.ndarray) -> np.ndarray:
    """The motor torque of the next physics step for a command, and what a PD law would give."""
    before = sim.read()
    sim.set_command(q, kp, kd)
    sim.step(1)
    return before.joint_pos, before.joint_vel, sim.torque  # type: ignore[return-value]


def test_motor_gains_and_torque_limits_act_in_the_motor_law() -> None:
    """The applied torque is kp x 0.65 (q* - q) - kd x 0.8 dq, clipped at 0.8 x the spec's limits and
    1 N m on one calf: the PD law a weaker motor runs on the gains each command sent."""
    edits = [
        {"kind": "motor_kp", "joint": "*", "scale": 0.65},
        {"kind": "motor_kd", "joint": "*", "scale": 0.8},
        {"kind": "joint_torque_limit", "joint": "*", "scale": 0.8},
        {"kind": "joint_torque_limit", "joint": "FR_calf_joint", "value": 1.0},
    ]
    sim = _standing(edits, 0.3)
    calf = GO2.joint_names.index("FR_calf_joint")
    target = GO2.default_pos_array + np.linspace(-0.3, 0.3, GO2.num_joints)
    target[calf] += 0.3
    q, dq, torque = _one_step_torque(sim, target, GO2.kp_array, GO2.kd_array)
    limit = 0.8 * GO2.torque_limit_array
    limit[calf] = 1.0
    expected = np.clip(0.65 * GO2.kp_array * (target - q) - 0.8 * GO2.kd_array * dq, -limit, limit)
    np.testing.assert_allclose(torque, expected, rtol=1e-6, atol=1e-6)
    assert abs(torque[calf]) == pytest.approx(1.0)  # the weakened calf saturates
    # The nominal robot applies the commanded gains: the same command, the full PD torque.
    nominal = _standing([], 0.3)
    q, dq, torque = _one_step_torque(nominal, target, GO2.kp_array, GO2.kd_array)
    full = np.clip(
        GO2.kp_array * (target - q) - GO2.kd_array * dq, -GO2.torque_limit_array, GO2.torque_limit_array
    )
    np.testing.assert_allclose(torque, full, rtol=1e-6, atol=1e-6)


def test_a_weaker_motor_sags_more_under_the_same_command() -> None:
    nominal, weak = _standing([]), _standing([{"kind": "motor_kp", "joint": "*", "scale": 0.65}])
    sag = lambda sim: np.abs(sim.read().joint_pos - GO2.default_pos_array).max()  # noqa: E731
    assert sag(weak) > 1.4 * sag(nominal)
    assert weak.read().base_pos[2] < nominal.read().base_pos[2] - 0.005


def test_action_delay_holds_each_command_for_whole_control_periods() -> None:
    """action_delay steps=2 on the Go2 (20 ms control period): a command reaches the motors 40 ms
    (40 physics steps at 1 kHz) after it arrived, whatever the chunks the simulator is stepped in."""
    sim = _standing([{"kind": "action_delay", "steps": 2}], 0.2)
    old = sim.applied_command[0].copy()
    new = GO2.default_pos_array + 0.2
    sim.set_command(new, GO2.kp_array, GO2.kd_array)
    sim.step(25)
    sim.step(14)
    np.testing.assert_array_equal(sim.applied_command[0], old)  # 39 ms: still the old command
    sim.step(1)
    np.testing.assert_array_equal(sim.applied_command[0], new)  # 40 ms: the new one
    np.testing.assert_array_equal(sim.cmd_q, new)  # what the robot received, at once


def test_model_edits_change_the_target_and_nothing_else() -> None:
    from robolearn.envs.tasks.velocity import VelocityTask

    edits = [
        {"kind": "payload", "body": "base", "mass": 1.5},
        {"kind": "geom_friction", "geom": "*", "scale": 0.5},
    ]
    target = RobotSimulation(GO2, mismatch=target_physics(GO2, edits))
    nominal = RobotSimulation(GO2)
    assert target.model.body_mass.sum() == pytest.approx(nominal.model.body_mass.sum() + 1.5)
    ng = nominal.model.ngeom  # the payload's sphere is the target's one extra geom
    assert target.model.ngeom == ng + 1
    np.testing.assert_allclose(target.model.geom_friction[:ng, 0], 0.5 * nominal.model.geom_friction[:, 0])
    # The training task (the nominal simulator) never sees the target's parameters.
    task = VelocityTask()
    try:
        assert task.mj_model.body_mass.sum() == pytest.approx(nominal.model.body_mass.sum())
        assert mujoco.mj_name2id(task.mj_model, mujoco.mjtObj.mjOBJ_BODY, "payload_0") == -1
    finally:
        task.close()


def test_named_mismatches_compose_and_reach_the_deploy_backend() -> None:
    from robolearn.deploy.app import make_backend

    cfg = compose_config("deploy", ["robot=go2", "mismatch=gains_strength"])
    validate_deploy_config(cfg)
    backend = make_backend(cfg, GO2)
    try:
        sim = backend.sim  # type: ignore[attr-defined]
        np.testing.assert_allclose(sim.mismatch.kp_scale, 0.65)
        np.testing.assert_allclose(sim.mismatch.kd_scale, 0.8)
        np.testing.assert_allclose(sim.mismatch.torque_limit, 0.8 * GO2.torque_limit_array)
        assert sim.mismatch.describe().startswith("mismatch gains_strength: motor_kp(*)")
    finally:
        backend.close()
    delay = target_from_config(compose_config("deploy", ["robot=go2", "mismatch=friction_mass_delay"]), GO2)
    assert delay.delay_s == pytest.approx(GO2.control_dt) and len(delay.model_edits) == 3
    assert target_from_config(compose_config("deploy", ["robot=go2"]), GO2).nominal


def test_the_sticky_leg_edits_one_leg_of_the_target_and_the_oracle_gets_it_exactly(tmp_path: Path) -> None:
    """mismatch=sticky_leg, outside SysID's one-scale-per-parameter family: the front-left joints'
    friction and damping change on the target, no other joint's; the oracle's edited model has the
    same per-joint values and its motors stay nominal."""
    from robolearn.sim2real.physics import oracle_physics

    target = target_from_config(compose_config("deploy", ["robot=go2", "mismatch=sticky_leg"]), GO2)
    assert target.delay_s == 0 and len(target.model_edits) == 6
    np.testing.assert_allclose(target.kp_scale, 1.0)
    edited, nominal = RobotSimulation(GO2, mismatch=target).model, RobotSimulation(GO2).model
    oracle = oracle_physics("go2", [e.to_dict() for e in target.edits], tmp_path)
    assert oracle.model_path is not None and oracle.params.kp_scale == 1.0 and oracle.params.delay == 0
    theirs = mujoco.MjModel.from_xml_path(str(oracle.model_path))
    for name in GO2.joint_names:
        dof = [
            int(m.jnt_dofadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)])
            for m in (edited, nominal, theirs)
        ]
        scales = (20.0, 10.0) if name.startswith("FL_") else (1.0, 1.0)
        assert edited.dof_damping[dof[0]] == pytest.approx(scales[0] * nominal.dof_damping[dof[1]]), name
        assert edited.dof_frictionloss[dof[0]] == pytest.approx(
            scales[1] * nominal.dof_frictionloss[dof[1]]
        ), name
        assert theirs.dof_damping[dof[2]] == pytest.approx(edited.dof_damping[dof[0]]), name
        assert theirs.dof_frictionloss[dof[2]] == pytest.approx(edited.dof_frictionloss[dof[0]]), name


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (
            ["mismatch.edits=[{kind: motor_kp, joint: FR_calf, scale: 0.5}]"],
            "is not a joint of the go2 model (scene.xml) (did you mean FR_calf_joint",
        ),
        (["mismatch.edits=[{kind: motor_kp, joint: '*', scale: -1}]"], "scale = -1 must be > 0"),
        (
            ["mismatch.edits=[{kind: actuator_gain, actuator: '*', scale: 0.5}]"],
            "weaken the motors with motor_kp",
        ),
        (
            ["mismatch.edits=[{kind: payload, body: torso, mass: 1}]"],
            "'torso' is not a body of the go2 model",
        ),
        (["robot=g1", "mismatch=friction_mass_delay"], "'base' is not a body of the g1 model"),
    ],
)
def test_a_bad_mismatch_is_one_line_before_any_work(overrides: list[str], needle: str) -> None:
    cfg = compose_config("deploy", ["robot=go2", *overrides])
    with pytest.raises(UserError) as info:
        validate_deploy_config(cfg)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_motor_kinds_are_refused_by_training_envs(tmp_path: Path) -> None:
    from robolearn.envs.edits import make_edited_env, parse_edits

    with pytest.raises(UserError, match="acts in the deploy simulator's motors"):
        make_edited_env(
            "robolearn/Go2Velocity-v1", parse_edits([{"kind": "motor_kp", "joint": "*", "scale": 0.65}])
        )
