"""The G1 with 29 DoF: its spec against Unitree's numbers, its MJCF against the spec, standing, deploy.

Every expected number below is transcribed from a primary source named next to it, not from our code.
"""

from __future__ import annotations

import math
import time

import mujoco
import numpy as np
import pytest

from robolearn.deploy.dds import claim_local_domain
from robolearn.errors import UserError
from robolearn.robots import G1_SPEC, RobotSpec, RobotState, build_observation, observation_size
from robolearn.robots.actuators import ACTION_TORQUE_FRACTION, DAMPING_RATIO, NATURAL_FREQUENCY_HZ, pd_gains
from robolearn.robots.g1_29 import G1_29_SPEC, G1_4010
from robolearn.robots.model import (
    apply_pd,
    default_model_path,
    geom_lowest_point,
    joint_index_map,
    kinematic_base_height,
    load_model,
    read_state,
    set_default_pose,
)
from robolearn.robots.registry import get_robot_spec, robot_names
from robolearn.robots.spec import SUPPORTED_MODE_MACHINES

SPEC = G1_29_SPEC

# unitree_sdk2_python example/g1/low_level/g1_low_level_example.py, G1JointIndex 0-28.
UNITREE_SLOTS = {
    "LeftHipPitch": 0, "LeftHipRoll": 1, "LeftHipYaw": 2, "LeftKnee": 3, "LeftAnklePitch": 4,
    "LeftAnkleRoll": 5, "RightHipPitch": 6, "RightHipRoll": 7, "RightHipYaw": 8, "RightKnee": 9,
    "RightAnklePitch": 10, "RightAnkleRoll": 11, "WaistYaw": 12, "WaistRoll": 13, "WaistPitch": 14,
    "LeftShoulderPitch": 15, "LeftShoulderRoll": 16, "LeftShoulderYaw": 17, "LeftElbow": 18,
    "LeftWristRoll": 19, "LeftWristPitch": 20, "LeftWristYaw": 21, "RightShoulderPitch": 22,
    "RightShoulderRoll": 23, "RightShoulderYaw": 24, "RightElbow": 25, "RightWristRoll": 26,
    "RightWristPitch": 27, "RightWristYaw": 28,
}  # fmt: skip

# unitree_ros robots/g1_description/g1_29dof_rev_1_0.urdf: <limit lower upper effort velocity> per
# joint (left side; the right side mirrors the roll and yaw ranges of the hips and shoulders).
URDF_LIMITS = {
    "left_hip_pitch_joint": (-2.5307, 2.8798, 88, 32),
    "left_hip_roll_joint": (-0.5236, 2.9671, 139, 20),
    "left_hip_yaw_joint": (-2.7576, 2.7576, 88, 32),
    "left_knee_joint": (-0.087267, 2.8798, 139, 20),
    "left_ankle_pitch_joint": (-0.87267, 0.5236, 35, 30),
    "left_ankle_roll_joint": (-0.2618, 0.2618, 35, 30),
    "waist_yaw_joint": (-2.618, 2.618, 88, 32),
    "waist_roll_joint": (-0.52, 0.52, 35, 30),
    "waist_pitch_joint": (-0.52, 0.52, 35, 30),
    "left_shoulder_pitch_joint": (-3.0892, 2.6704, 25, 37),
    "left_shoulder_roll_joint": (-1.5882, 2.2515, 25, 37),
    "left_shoulder_yaw_joint": (-2.618, 2.618, 25, 37),
    "left_elbow_joint": (-1.0472, 2.0944, 25, 37),
    "left_wrist_roll_joint": (-1.972222054, 1.972222054, 25, 37),
    "left_wrist_pitch_joint": (-1.614429558, 1.614429558, 5, 22),
    "left_wrist_yaw_joint": (-1.614429558, 1.614429558, 5, 22),
}
# The URDF's 35 N·m on the two-motor linkages is 50 N·m in Unitree's g1_29dof_rev_1_0.xml
# (actuatorfrcrange), the value we use, as the 23-DoF spec does for its ankles.
LINKAGE_JOINTS = ("ankle_pitch", "ankle_roll", "waist_roll", "waist_pitch")

# unitree_mujoco unitree_robots/g1/g1_29dof.xml: damping 0.05 and frictionloss 0.2 on every joint
# class but wrist_motor (wrist pitch/yaw), whose frictionloss is 0.1.
DAMPING = 0.05
LOW_FRICTION_JOINTS = ("wrist_pitch", "wrist_yaw")


def _camel(joint: str) -> str:
    return "".join(part.capitalize() for part in joint.removesuffix("_joint").split("_"))


def test_registered_under_g1_29dof() -> None:
    assert get_robot_spec("g1_29dof") is SPEC and "g1_29dof" in robot_names()
    with pytest.raises(UserError, match="unknown robot 'g1_29' \\(did you mean g1_29dof"):
        get_robot_spec("g1_29")


def test_motor_slots_are_unitrees_g1_joint_index() -> None:
    assert SPEC.num_joints == 29 and SPEC.message_family == "unitree_hg" and SPEC.num_motor_slots == 35
    assert SPEC.motor_indices == tuple(range(29))  # joint order = motor slot order
    assert {_camel(j): s for j, s in zip(SPEC.joint_names, SPEC.motor_indices, strict=True)} == UNITREE_SLOTS
    # The 23-DoF joints keep their slots; the six extra joints are the slots the 23-DoF leaves out.
    assert (
        dict(zip(G1_SPEC.joint_names, G1_SPEC.motor_indices, strict=True)).items()
        <= dict(zip(SPEC.joint_names, SPEC.motor_indices, strict=True)).items()
    )
    assert set(SPEC.motor_indices) - set(G1_SPEC.motor_indices) == {13, 14, 20, 21, 27, 28}
    # unitree_ros g1_description README: g1_29dof_rev_1_0 reports mode_machine 5 (23-DoF rev 1.0: 4).
    assert SUPPORTED_MODE_MACHINES["g1_29dof"] == (5,)


@pytest.mark.parametrize("joint", sorted(URDF_LIMITS))
def test_ranges_and_limits_are_the_urdfs(joint: str) -> None:
    lower, upper, effort, velocity = URDF_LIMITS[joint]
    sides = [joint] if not joint.startswith("left_") else [joint, joint.replace("left_", "right_")]
    for name in sides:
        i = SPEC.joint_names.index(name)
        # Roll and yaw ranges mirror on the right side (pitch axes do not flip).
        mirrored = name.startswith("right_") and ("_roll" in name or "_yaw" in name)
        lo, hi = (-upper, -lower) if mirrored else (lower, upper)
        assert (SPEC.joint_pos_lower[i], SPEC.joint_pos_upper[i]) == (lo, hi), name
        linkage = any(k in name for k in LINKAGE_JOINTS)
        assert SPEC.torque_limits[i] == (50.0 if linkage else effort), name
        assert SPEC.velocity_limits[i] == velocity, name


def test_shared_joints_equal_the_23dof_spec() -> None:
    for name in G1_SPEC.joint_names:
        i, j = SPEC.joint_names.index(name), G1_SPEC.joint_names.index(name)
        for field in ("default_joint_pos", "kp", "kd", "armature", "torque_limits", "action_scale"):
            assert getattr(SPEC, field)[i] == getattr(G1_SPEC, field)[j], (name, field)
    # mjlab's HOME_KEYFRAME leaves the extra joints at zero.
    extra = [n for n in SPEC.joint_names if n not in G1_SPEC.joint_names]
    assert [SPEC.default_joint_pos[SPEC.joint_names.index(n)] for n in extra] == [0.0] * 6


def test_wrist_4010_gains_follow_its_armature() -> None:
    # mjlab g1_constants.py: 4010 rotor 0.068e-4 kg·m² through 5:1 and 5:1 -> 0.00425 kg·m².
    assert G1_4010.armature == pytest.approx(0.068e-4 * 25**2)
    for a, kp, kd, scale, limit in zip(
        SPEC.armature, SPEC.kp, SPEC.kd, SPEC.action_scale, SPEC.torque_limits, strict=True
    ):
        assert (kp, kd) == pytest.approx(pd_gains(a, NATURAL_FREQUENCY_HZ, DAMPING_RATIO))
        assert scale == pytest.approx(ACTION_TORQUE_FRACTION * limit / kp)
    i = SPEC.joint_names.index("left_wrist_yaw_joint")
    assert SPEC.kp[i] == pytest.approx(0.00425 * (2 * math.pi * 10) ** 2)


def test_json_round_trip_and_observation_size() -> None:
    assert RobotSpec.from_json(SPEC.to_json()) == SPEC
    obs = build_observation(RobotState.default(SPEC), SPEC)
    assert obs.shape == (observation_size(SPEC),) == (9 + 3 * 29,)


# --- The MJCF ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return load_model(SPEC)


def test_total_mass_is_within_5_percent_of_published(model: mujoco.MjModel) -> None:
    mass = mujoco.mj_getTotalmass(model)
    assert abs(mass - SPEC.total_mass) / SPEC.total_mass < 0.05, f"{mass:.2f} kg"


def test_link_masses_are_unitrees(model: mujoco.MjModel) -> None:
    # g1_29dof_rev_1_0.xml: pelvis, waist and wrist links; the torso is the pre-rev-1.0 g1_29dof.xml's.
    expected = {"pelvis": 3.813, "waist_yaw_link": 0.214, "waist_roll_link": 0.086, "torso_link": 9.598}
    for side in ("left", "right"):
        expected |= {f"{side}_wrist_roll_link": 0.085445, f"{side}_wrist_pitch_link": 0.48405}
        expected |= {f"{side}_wrist_yaw_link": 0.254576, f"{side}_knee_link": 1.932}
    for body, mass in expected.items():
        assert model.body(body).mass[0] == pytest.approx(mass, abs=1e-9), body
    # Unitree's rev 1.0 robot (33.341142 kg) with its 7.818 kg torso swapped for the 9.598 kg one.
    assert mujoco.mj_getTotalmass(model) == pytest.approx(33.341142 - 7.818 + 9.598, abs=1e-6)


def test_joint_ranges_limits_armature_and_losses_equal_the_spec(model: mujoco.MjModel) -> None:
    index = joint_index_map(model, SPEC)
    assert model.jnt_limited[index.joint_ids].all()
    np.testing.assert_array_equal(model.jnt_range[index.joint_ids, 0], SPEC.joint_pos_lower)
    np.testing.assert_array_equal(model.jnt_range[index.joint_ids, 1], SPEC.joint_pos_upper)
    assert model.actuator_ctrllimited[index.actuator_ids].all()
    np.testing.assert_array_equal(model.actuator_ctrlrange[index.actuator_ids, 1], SPEC.torque_limits)
    np.testing.assert_array_equal(
        model.actuator_ctrlrange[index.actuator_ids, 0], -np.array(SPEC.torque_limits)
    )
    np.testing.assert_allclose(model.dof_armature[index.qvel_adr], SPEC.armature, rtol=1e-5)
    expected = [0.1 if any(k in n for k in LOW_FRICTION_JOINTS) else 0.2 for n in SPEC.joint_names]
    np.testing.assert_array_equal(model.dof_frictionloss[index.qvel_adr], expected)
    np.testing.assert_array_equal(model.dof_damping[index.qvel_adr], DAMPING)
    assert model.opt.timestep == SPEC.physics_dt


def test_named_frames_keyframe_and_base_height(model: mujoco.MjModel) -> None:
    for kind, names in (
        (mujoco.mjtObj.mjOBJ_BODY, (SPEC.base_body, SPEC.imu_body, *SPEC.foot_bodies)),
        (mujoco.mjtObj.mjOBJ_SITE, (SPEC.imu_site, "imu_in_torso")),
        (mujoco.mjtObj.mjOBJ_GEOM, SPEC.foot_geoms),
    ):
        for name in names:
            assert mujoco.mj_name2id(model, kind, name) >= 0, name
    index = joint_index_map(model, SPEC)
    home = model.key("home").qpos
    np.testing.assert_allclose(home[index.qpos_adr], SPEC.default_joint_pos)
    assert home[index.root_qpos_adr + 2] == pytest.approx(SPEC.base_height)
    assert kinematic_base_height(model, SPEC) == pytest.approx(SPEC.base_height, abs=5e-4)


def test_frames_are_unitrees_rev_1_0_kinematics(model: mujoco.MjModel) -> None:
    # g1_29dof_rev_1_0.xml at the zero pose, pelvis at the origin: the waist roll/pitch axes sit
    # 0.044 m above the waist yaw, and the wrist yaw frame is 0.038 + 0.046 m beyond the wrist roll.
    data = mujoco.MjData(model)
    data.qpos[:7] = (0, 0, 0, 1, 0, 0, 0)
    mujoco.mj_kinematics(model, data)

    def pos(body: str) -> np.ndarray:
        return data.xpos[mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)]

    np.testing.assert_allclose(pos("torso_link"), [-0.0039635, 0.0, 0.044], atol=1e-9)
    for side in ("left", "right"):
        gap = pos(f"{side}_wrist_yaw_link") - pos(f"{side}_wrist_roll_link")
        assert np.linalg.norm(gap) == pytest.approx(0.084, abs=1e-9)


def test_holds_its_weight_when_balanced_by_a_weld() -> None:
    # As the 23-DoF: no humanoid balances on PD alone, so a weld at the pelvis supplies balance only;
    # the legs, waist and arms (with their friction loss) still hold the default pose under load.
    model_spec = mujoco.MjSpec.from_file(str(default_model_path(SPEC)))
    weld = model_spec.add_equality()
    weld.type = mujoco.mjtEq.mjEQ_WELD
    weld.objtype = mujoco.mjtObj.mjOBJ_BODY
    weld.name1 = SPEC.base_body
    model = model_spec.compile()
    data = mujoco.MjData(model)
    index = joint_index_map(model, SPEC)
    set_default_pose(model, data, SPEC, index)
    heights = []
    for _ in range(round(2.0 / SPEC.physics_dt)):
        apply_pd(data, SPEC, index, SPEC.default_pos_array)
        mujoco.mj_step(model, data)
        heights.append(float(data.qpos[index.root_qpos_adr + 2]))
    error = data.qpos[index.qpos_adr] - SPEC.default_pos_array
    assert abs(heights[-1] - SPEC.base_height) < 0.02
    assert np.abs(error).max() < 0.1, SPEC.joint_names[int(np.abs(error).argmax())]
    assert np.abs(read_state(data, index).joint_vel).max() < 0.05  # settled
    for name in SPEC.foot_geoms:
        geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        assert abs(geom_lowest_point(model, data, geom)) < 0.005  # soles on the floor
    force, normal = np.zeros(6), 0.0
    for i in range(data.ncon):
        mujoco.mj_contactForce(model, data, i, force)
        normal += force[0]
    assert normal > 0.8 * mujoco.mj_getTotalmass(model) * 9.81


def test_23dof_and_29dof_models_refuse_each_others_spec() -> None:
    with pytest.raises(
        UserError, match=r"missing joint\(s\) waist_roll_joint, waist_pitch_joint, .* \(6 of 29\)"
    ):
        load_model(SPEC, default_model_path(G1_SPEC))
    with pytest.raises(
        UserError, match="actuates joint\\(s\\) the g1 spec does not know: left_wrist_pitch_joint"
    ):
        load_model(G1_SPEC, default_model_path(SPEC))


# --- Deploy ----------------------------------------------------------------------------------------


def test_deploy_runtime_runs_it_on_mujoco_without_a_policy() -> None:
    from robolearn.config.validate import compose_config
    from robolearn.deploy.app import build_session

    cfg = compose_config(
        "deploy",
        [
            "robot=g1_29dof",
            "backend=mujoco",
            "autostart=true",
            "settings.ramp_s=0.5",
            "duration_s=1.5",
            "exit_damp_s=0.2",
            "keyboard=false",
            "status_every_s=0",
        ],
    )
    assert cfg.settings.safety.max_tilt_deg == 30 and "kp" not in str(cfg)
    runtime, _, _ = build_session(cfg)
    summary = runtime.run()
    # Ramp to the default pose, hold it; with no gantry the humanoid tips over and the tilt guard
    # damps it, as it does the 23-DoF G1 (docs/robots.md).
    transitions = [(t["from"], t["to"]) for t in summary["transitions"]]
    assert transitions[:2] == [("PASSIVE", "RAMP"), ("RAMP", "HOLD")]
    assert summary["policy_steps"] == 0 and summary["final_state"] == "DAMP"
    assert all(f["reason"].startswith("base_tilt") for f in summary["faults"])


def _take_domain() -> int:
    # The deploy tests' lock-file convention (robolearn.deploy.dds.claim_local_domain), so a
    # concurrent test run never shares this domain; the lock is held until the process ends.
    domain, fh = claim_local_domain()
    _HELD.append(fh)
    return domain


_HELD: list[object] = []


def test_lowstate_and_lowcmd_use_slots_0_to_28_over_loopback_dds() -> None:
    pytest.importorskip("cyclonedds")
    pytest.importorskip("unitree_sdk2py")
    from robolearn.deploy.backends.dds_backend import DdsBackend
    from robolearn.deploy.commands import CommandLimiter
    from robolearn.deploy.dds import LOWSTATE_TOPIC, DdsSession

    domain = _take_domain()
    session = DdsSession(domain, "lo")
    backend = DdsBackend(SPEC, session, dry_run=True)
    family = backend.family
    try:
        state = family.low_state.new()
        state["mode_machine"] = SUPPORTED_MODE_MACHINES["g1_29dof"][0]
        state["motor_state"]["q"][:29] = np.arange(29) * 0.01  # slot k reads 0.01 k
        state["motor_state"]["q"][29:] = 9.0  # unused slots: never read
        family.low_state.seal(state)
        writer = session.writer(LOWSTATE_TOPIC, family.sdk_types()[1])
        sample = None
        for _ in range(200):
            writer.write(family.low_state.encode(state))
            time.sleep(0.01)
            sample = backend.poll_state(now=0.0)
            if sample is not None:
                break
        assert sample is not None, "no LowState over loopback DDS in 2 s"
        np.testing.assert_allclose(sample.joint_pos, np.arange(29) * 0.01, atol=1e-6)
        command = CommandLimiter(SPEC).pd(SPEC.default_pos_array, sample.joint_pos, sample.joint_vel)
        sent = family.low_cmd.decode(backend.encode(command))
        assert (
            int(sent["mode_machine"]) == SUPPORTED_MODE_MACHINES["g1_29dof"][0]
        )  # echoed, or the G1 ignores the command
        motors = sent["motor_cmd"]
        np.testing.assert_allclose(motors["q"][:29], SPEC.default_pos_array, atol=1e-6)
        np.testing.assert_allclose(motors["kp"][:29], SPEC.kp, rtol=1e-6)
        assert np.all(motors["mode"][:29] == 1) and np.all(motors["mode"][29:] == 0)
        assert np.all(motors["kp"][29:] == 0) and family.low_cmd.crc_ok(sent)
    finally:
        backend.close()
