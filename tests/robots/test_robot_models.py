"""Fidelity of our MJCF models against the specs, model checks, index maps, and PD stand tests."""

from __future__ import annotations

import re
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.robots import G1_SPEC, GO2_SPEC, RobotSpec
from robolearn.robots.actuators import G1_JOINT_LOSSES, GO2_JOINT_LOSSES
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
from robolearn.robots.observations import projected_gravity

SPECS = [GO2_SPEC, G1_SPEC]


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.name)
def robot(request: pytest.FixtureRequest) -> tuple[RobotSpec, mujoco.MjModel]:
    spec: RobotSpec = request.param
    return spec, load_model(spec)


def test_total_mass_is_within_5_percent_of_published(robot: tuple[RobotSpec, mujoco.MjModel]) -> None:
    spec, model = robot
    mass = mujoco.mj_getTotalmass(model)
    assert abs(mass - spec.total_mass) / spec.total_mass < 0.05, f"{spec.name}: {mass:.2f} kg"


def test_joint_ranges_limits_and_armature_equal_the_spec(robot: tuple[RobotSpec, mujoco.MjModel]) -> None:
    spec, model = robot
    index = joint_index_map(model, spec)
    assert model.jnt_limited[index.joint_ids].all()
    np.testing.assert_array_equal(model.jnt_range[index.joint_ids, 0], spec.joint_pos_lower)
    np.testing.assert_array_equal(model.jnt_range[index.joint_ids, 1], spec.joint_pos_upper)
    assert model.actuator_ctrllimited[index.actuator_ids].all()
    np.testing.assert_array_equal(model.actuator_ctrlrange[index.actuator_ids, 1], spec.torque_limits)
    np.testing.assert_array_equal(
        model.actuator_ctrlrange[index.actuator_ids, 0], -np.array(spec.torque_limits)
    )
    # The MJCF writes armature to 6 significant digits.
    np.testing.assert_allclose(model.dof_armature[index.qvel_adr], spec.armature, rtol=1e-5)
    assert model.opt.timestep == spec.physics_dt


def test_joint_losses_and_foot_friction_are_the_documented_ones(
    robot: tuple[RobotSpec, mujoco.MjModel],
) -> None:
    spec, model = robot
    index = joint_index_map(model, spec)
    losses = GO2_JOINT_LOSSES if spec.name == "go2" else G1_JOINT_LOSSES
    # Unitree's MJCF values (unitree_mujoco), on every spec joint and on no root dof.
    np.testing.assert_array_equal(model.dof_frictionloss[index.qvel_adr], losses.frictionloss)
    np.testing.assert_array_equal(model.dof_damping[index.qvel_adr], losses.damping)
    assert model.dof_frictionloss.sum() == pytest.approx(losses.frictionloss * spec.num_joints)
    feet = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, g) for g in spec.foot_geoms]
    floor = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    # The feet outrank the floor, so their friction is the contact's (docs/robots.md: Go2 0.8, G1 1.0).
    assert (model.geom_priority[feet] > model.geom_priority[floor]).all()
    np.testing.assert_array_equal(model.geom_friction[feet, 0], 0.8 if spec.name == "go2" else 1.0)


def _hung_go2(losses: bool) -> mujoco.MjModel:
    """Our Go2 with its base fixed 1 m up (free joint removed), with or without the joint losses."""
    mj_spec = mujoco.MjSpec.from_file(str(default_model_path(GO2_SPEC)))
    base = mj_spec.body(GO2_SPEC.base_body)
    mj_spec.delete(base.first_joint())
    base.pos = [0.0, 0.0, 1.0]
    mj_spec.delete(mj_spec.key("home"))  # its qpos has the free joint's 7 values
    model = mj_spec.compile()
    if not losses:
        model.dof_frictionloss[:] = 0.0
        model.dof_damping[:] = 0.0
    return model


def _swing(model: mujoco.MjModel, joint: str, start: float, seconds: float) -> np.ndarray:
    """A joint's angle, released at rest from `start` with the motors off, the other joints at the default pose."""
    data = mujoco.MjData(model)
    for name, q in zip(GO2_SPEC.joint_names, GO2_SPEC.default_joint_pos, strict=True):
        data.joint(name).qpos[0] = start if name == joint else q
    path = []
    for _ in range(round(seconds / model.opt.timestep)):
        mujoco.mj_step(model, data)
        path.append(float(data.joint(joint).qpos[0]))
    return np.asarray(path)


def test_joint_friction_changes_a_free_swing() -> None:
    # The Go2's front-right thigh, hung from a fixed base and released at 1.5 rad (0.7 rad past the
    # default pose) with the motors off, swings under gravity; then the same without joint losses.
    model = _hung_go2(losses=True)
    assert model.dof_frictionloss.max() == GO2_JOINT_LOSSES.frictionloss
    start = 1.5
    with_losses = _swing(model, "FR_thigh_joint", start, 1.0)
    without = _swing(_hung_go2(losses=False), "FR_thigh_joint", start, 1.0)
    assert np.isfinite(with_losses).all() and np.isfinite(without).all()
    # Both move (gravity beats 0.2 N·m of friction at this angle; the leg hangs near 0.2 rad).
    assert abs(with_losses[20] - start) > 0.05 and abs(without[20] - start) > 0.05
    # The lossy swing lags from the start and ends on a different trajectory...
    assert abs(with_losses[20] - start) < abs(without[20] - start)
    assert np.max(np.abs(with_losses - without)) > 0.05
    # ... and loses more energy: its late oscillation about the hanging angle is smaller.
    late = slice(len(without) // 2, None)
    assert np.ptp(with_losses[late]) < 0.8 * np.ptp(without[late])


def test_named_frames_exist_and_keyframe_is_the_default_pose(robot: tuple[RobotSpec, mujoco.MjModel]) -> None:
    spec, model = robot
    for kind, names in (
        (mujoco.mjtObj.mjOBJ_BODY, (spec.base_body, spec.imu_body, *spec.foot_bodies)),
        (mujoco.mjtObj.mjOBJ_SITE, (spec.imu_site,)),
        (mujoco.mjtObj.mjOBJ_GEOM, spec.foot_geoms),
    ):
        for name in names:
            assert mujoco.mj_name2id(model, kind, name) >= 0, name
    index = joint_index_map(model, spec)
    home = model.key("home").qpos
    np.testing.assert_allclose(home[index.qpos_adr], spec.default_joint_pos)
    assert home[index.root_qpos_adr + 2] == pytest.approx(spec.base_height)


def test_spec_base_height_is_the_models_kinematic_height(robot: tuple[RobotSpec, mujoco.MjModel]) -> None:
    spec, model = robot
    assert kinematic_base_height(model, spec) == pytest.approx(spec.base_height, abs=5e-4)


def _stand(
    model: mujoco.MjModel, spec: RobotSpec, seconds: float
) -> tuple[mujoco.MjData, np.ndarray, list[float]]:
    data = mujoco.MjData(model)
    index = joint_index_map(model, spec)
    set_default_pose(model, data, spec, index)
    heights = []
    for _ in range(round(seconds / spec.physics_dt)):
        apply_pd(data, spec, index, spec.default_pos_array)
        mujoco.mj_step(model, data)
        heights.append(float(data.qpos[index.root_qpos_adr + 2]))
    error = data.qpos[index.qpos_adr] - spec.default_pos_array
    return data, error, heights


def test_go2_stands_on_pd_alone() -> None:
    model = load_model(GO2_SPEC)
    data, error, heights = _stand(model, GO2_SPEC, seconds=2.0)
    index = joint_index_map(model, GO2_SPEC)
    state = read_state(data, index)
    # Soft gains (10 Hz on the rotor inertia) sag about 1.5 cm under 15 kg; the base stays level.
    assert abs(heights[-1] - GO2_SPEC.base_height) < 0.025
    assert min(heights) > GO2_SPEC.base_height - 0.03
    assert projected_gravity(state, GO2_SPEC)[2] < -0.99
    assert np.abs(error).max() < 0.15
    assert np.abs(state.joint_vel).max() < 0.05  # settled, not still sinking


def test_g1_holds_its_weight_when_balanced_by_a_weld() -> None:
    # A humanoid cannot balance on PD alone: the ankles give 2 x 28.5 N·m/rad against the
    # inverted pendulum's m*g*h of about 250 N·m/rad, and it tips over in about 1 s. A soft weld
    # at the pelvis supplies balance only; the legs still carry the weight at the default pose.
    model_spec = mujoco.MjSpec.from_file(str(default_model_path(G1_SPEC)))
    weld = model_spec.add_equality()
    weld.type = mujoco.mjtEq.mjEQ_WELD
    weld.objtype = mujoco.mjtObj.mjOBJ_BODY
    weld.name1 = G1_SPEC.base_body
    model = model_spec.compile()
    data, error, heights = _stand(model, G1_SPEC, seconds=2.0)
    assert abs(heights[-1] - G1_SPEC.base_height) < 0.02
    assert np.abs(error).max() < 0.1
    for name in G1_SPEC.foot_geoms:
        geom = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        assert abs(geom_lowest_point(model, data, geom)) < 0.005  # soles on the floor
    force = np.zeros(6)
    normal = 0.0
    for i in range(data.ncon):
        mujoco.mj_contactForce(model, data, i, force)
        normal += force[0]
    assert normal > 0.8 * mujoco.mj_getTotalmass(model) * 9.81


def _copy_model(tmp_path: Path, spec: RobotSpec, edit: tuple[str, str] | None = None) -> Path:
    """Our model folder copied to tmp_path, optionally with one text substitution in the robot file."""
    src_dir = default_model_path(spec).parent
    for f in src_dir.glob("*.xml"):
        text = f.read_text()
        if edit is not None and f.name != "scene.xml":
            text = text.replace(*edit)
        (tmp_path / f.name).write_text(text)
    return tmp_path / "scene.xml"


def test_renamed_joint_fails_with_the_missing_name(tmp_path: Path) -> None:
    path = _copy_model(tmp_path, GO2_SPEC, ('name="RL_calf_joint"', 'name="RL_knee_joint"'))
    path.with_name("go2.xml").write_text(
        path.with_name("go2.xml").read_text().replace('joint="RL_calf_joint"', 'joint="RL_knee_joint"')
    )
    with pytest.raises(
        UserError, match=r"does not match the go2 spec: missing joint\(s\) RL_calf_joint \(1 of 12\)"
    ):
        load_model(GO2_SPEC, path)


def test_removed_actuator_and_position_servo_are_refused(tmp_path: Path) -> None:
    path = _copy_model(tmp_path, GO2_SPEC, ('<motor name="FL_hip" joint="FL_hip_joint" class="hip"/>', ""))
    with pytest.raises(UserError, match="no actuator drives joint\\(s\\) FL_hip_joint"):
        load_model(GO2_SPEC, path)
    servo = '<position name="FL_hip" joint="FL_hip_joint" kp="20" ctrlrange="-1 1"/>'
    path = _copy_model(tmp_path, GO2_SPEC, ('<motor name="FL_hip" joint="FL_hip_joint" class="hip"/>', servo))
    with pytest.raises(UserError, match="actuator FL_hip on FL_hip_joint is not a torque motor"):
        load_model(GO2_SPEC, path)


def test_missing_or_broken_model_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="robot model file not found"):
        load_model(GO2_SPEC, tmp_path / "nope.xml")
    broken = tmp_path / "broken.xml"
    broken.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(UserError, match="MuJoCo could not load"):
        load_model(GO2_SPEC, broken)


def test_index_map_follows_joints_when_the_model_orders_them_differently(tmp_path: Path) -> None:
    # Also rename the base: user models call it base_link or trunk, and the free joint is found anyway.
    path = _copy_model(tmp_path, GO2_SPEC, ('<body name="base" pos', '<body name="base_link" pos'))
    robot_file = path.with_name("go2.xml")
    text = robot_file.read_text()
    # Reverse the actuator block: actuator i no longer drives spec joint i.
    block = re.search(r"<actuator>\n(.*?)\n  </actuator>", text, re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    text = text.replace(block.group(1), "\n".join(reversed(lines)))
    robot_file.write_text(text)
    model = load_model(GO2_SPEC, path)
    index = joint_index_map(model, GO2_SPEC)
    assert list(index.actuator_ids) == list(range(11, -1, -1))
    assert list(index.spec_index_of_actuator(model.nu)) == list(range(11, -1, -1))
    for name, a in zip(GO2_SPEC.joint_names, index.actuator_ids, strict=True):
        assert mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, model.actuator_trnid[a, 0]) == name
    data = mujoco.MjData(model)
    set_default_pose(model, data, GO2_SPEC, index)
    tau = apply_pd(data, GO2_SPEC, index, GO2_SPEC.default_pos_array + 0.1)
    np.testing.assert_allclose(data.ctrl[index.actuator_ids], tau)
    np.testing.assert_allclose(tau, np.minimum(GO2_SPEC.kp_array * 0.1, GO2_SPEC.torque_limit_array))


def test_extra_actuated_joint_is_refused(tmp_path: Path) -> None:
    # A model with more actuated joints than the spec (say Menagerie's 29-DoF G1 against the 23-DoF
    # spec) would leave some joints uncontrolled; the check names them.
    head = '<geom name="head_upper" type="sphere" size="0.05" pos="0.285 0 0.01"/>'
    neck = (
        '<body name="neck" pos="0.285 0 0.05"><joint name="neck_joint" range="-1 1"/>'
        '<geom type="sphere" size="0.02"/></body>'
    )
    path = _copy_model(tmp_path, GO2_SPEC, (head, head + neck))
    robot_file = path.with_name("go2.xml")
    robot_file.write_text(
        robot_file.read_text().replace(
            "</actuator>", '  <motor name="neck" joint="neck_joint"/>\n  </actuator>'
        )
    )
    with pytest.raises(UserError, match="actuates joint\\(s\\) the go2 spec does not know: neck_joint"):
        load_model(GO2_SPEC, path)
