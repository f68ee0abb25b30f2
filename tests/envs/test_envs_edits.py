"""Physical edits (robolearn.envs.edits): they really change the simulated physics, leave the
original model alone, and bad edits fail with one line naming the field."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from robolearn.envs.edits import (
    ActionDelay,
    Edit,
    apply_edits,
    base_model,
    make_edited_env,
    parse_edits,
    validate_edits,
    validate_env_edits,
)
from robolearn.errors import UserError

FALL_XML = """
<mujoco>
  <option timestep="0.001" gravity="0 0 -9.81"/>
  <worldbody>
    <body name="ball" pos="0 0 10">
      <freejoint name="free"/>
      <geom name="ball" type="sphere" size="0.1" density="1000"/>
    </body>
  </worldbody>
</mujoco>
"""


def _u(env: gym.Env) -> Any:
    """The innermost env, typed loosely (its model/dt/m/l/g attributes are the class's own)."""
    return env.unwrapped


def _rollout(env: gym.Env, steps: int = 20) -> np.ndarray:
    env.reset(seed=3)
    obs = []
    for k in range(steps):
        act = np.full(env.action_space.shape or (1,), 0.5 if k % 4 < 2 else -0.5, dtype=np.float32)
        o, *_ = env.step(act)
        obs.append(o)
    return np.array(obs)


def test_gravity_value_sets_free_fall_acceleration() -> None:
    spec = mujoco.MjSpec.from_string(FALL_XML)
    edited = apply_edits(spec, parse_edits([{"kind": "gravity", "value": [0, 0, -3.7]}]))
    for s, g in ((spec, -9.81), (edited, -3.7)):
        model = s.compile()
        data = mujoco.MjData(model)
        mujoco.mj_step(model, data, nstep=100)
        # Free fall from rest: z(t) = z0 + g t^2 / 2, and vz = g t.
        t = 100 * model.opt.timestep
        assert data.qvel[2] == pytest.approx(g * t, rel=1e-6)
        assert data.qpos[2] == pytest.approx(10 + 0.5 * g * t**2, rel=1e-3)


def test_apply_edits_leaves_the_original_spec_untouched() -> None:
    spec = mujoco.MjSpec.from_string(FALL_XML)
    before = spec.compile()
    apply_edits(
        spec,
        parse_edits(
            [
                {"kind": "body_mass", "body": "ball", "scale": 3.0},
                {"kind": "gravity", "scale": 0.5},
                {"kind": "payload", "body": "ball", "mass": 2.0},
            ]
        ),
    )
    after = spec.compile()
    assert after.nbody == before.nbody
    np.testing.assert_array_equal(after.body_mass, before.body_mass)
    np.testing.assert_array_equal(after.opt.gravity, before.opt.gravity)


def test_mass_scale_is_exact_even_with_settotalmass() -> None:
    # half_cheetah.xml takes inertia from geoms and rescales to 14 kg: a scale must still be exact.
    base = base_model("HalfCheetah-v5")
    env = make_edited_env(
        "HalfCheetah-v5", parse_edits([{"kind": "body_mass", "body": "bthigh", "scale": 2.0}])
    )
    model = _u(env).model
    i = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "bthigh")
    assert model.body_mass[i] == pytest.approx(2 * base.body_mass[i])
    np.testing.assert_allclose(model.body_inertia[i], 2 * base.body_inertia[i], rtol=1e-9)
    others = np.arange(model.nbody) != i
    np.testing.assert_allclose(model.body_mass[others], base.body_mass[others], rtol=1e-9)


def test_mass_edit_changes_the_trajectory_and_base_env_is_unchanged() -> None:
    nominal = _rollout(gym.make("InvertedPendulum-v5"))
    heavy_env = make_edited_env(
        "InvertedPendulum-v5", parse_edits([{"kind": "body_mass", "body": "pole", "scale": 3}])
    )
    heavy = _rollout(heavy_env)
    again = _rollout(gym.make("InvertedPendulum-v5"))
    assert np.abs(heavy - nominal).max() > 1e-3  # same actions, different physics
    np.testing.assert_array_equal(again, nominal)  # the registered env is untouched
    # dt, frame_skip and init_qpos stay those of the env.
    base = _u(gym.make("InvertedPendulum-v5"))
    assert _u(heavy_env).dt == base.dt
    np.testing.assert_array_equal(_u(heavy_env).init_qpos, base.init_qpos)


def test_body_size_lengthens_the_pole() -> None:
    env = make_edited_env(
        "InvertedPendulum-v5", parse_edits([{"kind": "body_size", "body": "pole", "scale": 1.5}])
    )
    model = _u(env).model
    base = base_model("InvertedPendulum-v5")
    g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "cpole")
    # Capsule half-length (from fromto) and radius both x1.5; density-based mass x1.5^3.
    assert model.geom_size[g, 1] == pytest.approx(1.5 * base.geom_size[g, 1])
    assert model.geom_size[g, 0] == pytest.approx(1.5 * base.geom_size[g, 0])
    assert model.body_mass[2] == pytest.approx(1.5**3 * base.body_mass[2], rel=1e-6)


def test_payload_joint_gain_friction_edits() -> None:
    edits = parse_edits(
        [
            {"kind": "payload", "body": "torso", "mass": 2.5, "pos": [0.1, 0, 0.05]},
            {"kind": "joint_damping", "joint": "*", "scale": 2.0},
            {"kind": "joint_armature", "joint": "bthigh", "value": 0.3},
            {"kind": "actuator_gain", "actuator": "fthigh", "scale": 0.5},
            {"kind": "actuator_gear", "actuator": "bshin", "value": 30},
            {"kind": "geom_friction", "geom": "ffoot", "value": 1.2},
            {"kind": "geom_friction", "geom": "bfoot", "scale": 2.0},
            {"kind": "body_com", "body": "torso", "offset": [0.05, 0, 0]},
        ]
    )
    base = base_model("HalfCheetah-v5")
    model = _u(make_edited_env("HalfCheetah-v5", edits)).model
    assert model.nbody == base.nbody + 1
    assert model.body("payload_0").mass[0] == pytest.approx(2.5)
    assert model.body("payload_0").parentid[0] == model.body("torso").id
    np.testing.assert_allclose(model.dof_damping, 2 * base.dof_damping)
    assert model.dof_armature[model.joint("bthigh").dofadr[0]] == pytest.approx(0.3)
    assert model.actuator("fthigh").gainprm[0] == pytest.approx(0.5 * base.actuator("fthigh").gainprm[0])
    assert model.actuator("bshin").gear[0] == pytest.approx(30)
    np.testing.assert_allclose(model.geom("ffoot").friction, [1.2, *base.geom("ffoot").friction[1:]])
    # One scale number is the sliding coefficient only, as domain randomisation scales it.
    np.testing.assert_allclose(model.geom("bfoot").friction, base.geom("bfoot").friction * [2.0, 1.0, 1.0])
    np.testing.assert_allclose(model.body("torso").ipos, base.body("torso").ipos + np.array([0.05, 0, 0]))


def test_action_delay_applies_actions_late() -> None:
    def run(env: gym.Env, acts: list[float]) -> np.ndarray:
        env.reset(seed=0)
        return np.array([env.step(np.array([a], dtype=np.float32))[0] for a in acts])

    acts = [2.0, -1.0, 0.5, 0.0, 0.0]
    delayed = make_edited_env("InvertedPendulum-v5", parse_edits([{"kind": "action_delay", "steps": 2}]))
    assert isinstance(delayed, ActionDelay)
    plain = run(gym.make("InvertedPendulum-v5"), [0.0, 0.0, *acts[:3]])
    np.testing.assert_allclose(run(delayed, acts), plain)


def test_pendulum_v1_maps_edits_to_its_parameters() -> None:
    env = make_edited_env(
        "Pendulum-v1",
        parse_edits(
            [
                {"kind": "gravity", "value": [0, 0, -4.0]},
                {"kind": "body_mass", "body": "pole", "scale": 2.0},
                {"kind": "body_size", "body": "pole", "scale": 0.5},
            ]
        ),
    )
    assert (_u(env).g, _u(env).m, _u(env).l) == (4.0, 2.0, 0.5)
    with pytest.raises(UserError, match=r"edits\[0\].kind = 'joint_damping' is not supported on Pendulum-v1"):
        make_edited_env("Pendulum-v1", parse_edits([{"kind": "joint_damping", "joint": "x", "scale": 2}]))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"kind": "body_mas", "body": "torso", "scale": 2},
            r"edits\[0\].kind = 'body_mas' is not an edit kind \(did you mean body_mass",
        ),
        ({"kind": "body_mass", "body": "torso", "scale": 0}, r"edits\[0\].scale = 0 must be > 0"),
        ({"kind": "body_mass", "body": "torso", "scale": -1.5}, r"edits\[0\].scale = -1.5 must be > 0"),
        ({"kind": "body_mass", "body": "torso"}, r"needs exactly one of: scale or value"),
        ({"kind": "body_mass", "body": "torso", "scale": 2, "value": 1}, r"needs exactly one of"),
        (
            {"kind": "body_mass", "joint": "torso", "scale": 2},
            r"edits\[0\].joint is not a field of a body_mass edit",
        ),
        ({"kind": "gravity", "value": [0, -9.8]}, r"edits\[0\].value = \[0, -9.8\] has 2 numbers; give 3"),
        ({"kind": "payload", "body": "torso", "mass": 0}, r"edits\[0\].mass = 0 must be > 0"),
        ({"kind": "action_delay", "steps": 1.5}, r"edits\[0\].steps = 1.5 must be an integer"),
        (
            {"kind": "body_size", "body": "*", "scale": 2},
            r"edits\[0\].body = '\*' is not allowed for body_size",
        ),
        (
            {"kind": "geom_friction", "geom": "x", "scale": "big"},
            r"edits\[0\].scale = 'big' is not a finite number",
        ),
    ],
)
def test_bad_edit_fields_fail_with_one_line(item: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        parse_edits([item])
    assert "\n" not in str(info.value)


def test_unknown_targets_name_the_field_and_list_names() -> None:
    with pytest.raises(UserError) as info:
        validate_env_edits(
            "HalfCheetah-v5",
            parse_edits(
                [{"kind": "gravity", "scale": 1.0}, {"kind": "body_mass", "body": "torsoo", "scale": 2}]
            ),
            where="sequence x tasks[2].edits",
        )
    msg = str(info.value)
    assert msg.startswith("sequence x tasks[2].edits[1].body = 'torsoo' is not a body of HalfCheetah-v5")
    assert "did you mean torso" in msg and "bthigh" in msg and "\n" not in msg
    model = base_model("HalfCheetah-v5")
    for item, field in (
        ({"kind": "joint_damping", "joint": "knee", "scale": 2}, "joint"),
        ({"kind": "actuator_gear", "actuator": "knee", "scale": 2}, "actuator"),
        ({"kind": "geom_size", "geom": "knee", "scale": 2}, "geom"),
        ({"kind": "geom_friction", "geom": "knee", "scale": 2}, "geom"),
    ):
        with pytest.raises(UserError, match=rf"edits\[0\].{field} = 'knee' is not a {field}"):
            validate_edits(model, parse_edits([item]))
    with pytest.raises(UserError, match="env 'HalfCheetah-v9' is not a registered Gymnasium id"):
        validate_env_edits("HalfCheetah-v9", [])
    with pytest.raises(UserError, match="is not a Gymnasium MuJoCo env"):
        validate_env_edits("CartPole-v1", [Edit("gravity", scale=(2.0,))])


def test_edit_round_trips_through_its_dict_form() -> None:
    items: list[dict[str, Any]] = [
        {"kind": "payload", "body": "torso", "mass": 2.0, "pos": [0.0, 0.0, 0.1], "name": "box"},
        {"kind": "geom_size", "geom": "torso", "scale": [1.0, 1.2, 1.0]},
        {"kind": "action_delay", "steps": 1},
    ]
    edits = parse_edits(items)
    assert parse_edits([e.to_dict() for e in edits]) == edits


def test_joint_torque_limit_caps_the_force() -> None:
    # InvertedPendulum's slider motor: gear 100, ctrl +-3, so the limit is 300 N; half of it caps a full push.
    base = base_model("InvertedPendulum-v5")
    env = make_edited_env(
        "InvertedPendulum-v5", parse_edits([{"kind": "joint_torque_limit", "joint": "slider", "scale": 0.5}])
    )
    model = _u(env).model
    np.testing.assert_allclose(model.jnt_actfrcrange[0], [-150.0, 150.0])
    assert base.jnt_actfrclimited[0] == 0
    env.reset(seed=0)
    env.step(np.array([3.0], dtype=np.float32))
    assert _u(env).data.qfrc_actuator[0] == pytest.approx(150.0)
    with pytest.raises(UserError, match=r"edits\[0\].value = 0 must be > 0"):
        parse_edits([{"kind": "joint_torque_limit", "joint": "slider", "value": 0}])


def test_robolearn_task_edits_go_through_model_path() -> None:
    go2 = "robolearn/Go2Velocity-v1"
    env = make_edited_env(go2, parse_edits([{"kind": "payload", "body": "base", "mass": 4.0}]))
    assert _u(env).mj_model.body_mass.sum() == pytest.approx(base_model(go2).body_mass.sum() + 4.0)
    # The task's PD law owns the actuators: a gain edit would silently do nothing, so it is refused.
    with pytest.raises(UserError, match=r"edits\[0\].kind = 'actuator_gain' has no effect on robolearn/Go2"):
        make_edited_env(go2, parse_edits([{"kind": "actuator_gain", "actuator": "FR_calf", "scale": 0.5}]))


def test_edited_env_renders_its_edited_model() -> None:
    # Rendering needs a GL context chosen before mujoco loads: run it in a child with EGL.
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np, gymnasium as gym\n"
        "from robolearn.envs.edits import make_edited_env, parse_edits\n"
        "e = make_edited_env('InvertedPendulum-v5', parse_edits([{'kind': 'body_size', 'body': 'pole', 'scale': 1.5}]),"
        " render_mode='rgb_array', width=64, height=64)\n"
        "e.reset(seed=0); a = e.render()\n"
        "b = gym.make('InvertedPendulum-v5', render_mode='rgb_array', width=64, height=64); b.reset(seed=0)\n"
        "print(a.shape, float(np.abs(a.astype(int) - b.render()).mean()))\n"
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "MUJOCO_GL": "egl"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("EGL rendering did not answer within 120 s on this machine")
    if out.returncode != 0:
        pytest.skip(f"no EGL rendering here: {out.stderr.strip().splitlines()[-1:]}")
    shape, diff = out.stdout.split(")")
    assert shape.strip() == "(64, 64, 3"
    assert float(diff) > 0.1  # the longer pole shows in the frame
