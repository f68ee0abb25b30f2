"""Task sequences (robolearn.mbrl.sequences): the shipped ones load and step, their tasks really
differ in physics, and bad sequences fail before any work with one line naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import yaml

from robolearn.errors import UserError
from robolearn.mbrl.sequences import load_sequence, parse_sequence, shipped_sequences


def _u(env: gym.Env) -> Any:
    return env.unwrapped


def test_shipped_sequences_are_the_expected_ones() -> None:
    assert {"pendulum", "pendulum_gravity", "halfcheetah_body", "halfcheetah_body5", "pusher"} <= set(
        shipped_sequences()
    )


@pytest.mark.parametrize("name", shipped_sequences())
def test_every_shipped_sequence_loads_and_each_task_steps(name: str) -> None:
    seq = load_sequence(name)
    assert seq.name == name and len(seq.tasks) >= 2
    shapes = set()
    for t in range(len(seq.tasks)):
        env = seq.make_env(t, seed=t)
        obs, _ = env.reset(seed=0)
        for _ in range(3):
            obs, reward, *_ = env.step(env.action_space.sample())
            assert np.all(np.isfinite(obs)) and np.isfinite(float(reward))
        shapes.add((obs.shape, env.action_space.shape))
        env.close()
    assert len(shapes) == 1  # every task shares the spaces
    # The file round-trips: its written-out form loads to the same tasks.
    assert parse_sequence(seq.to_dict(), name).tasks == seq.tasks


def test_halfcheetah_sequence_keeps_x_for_the_torch_reward() -> None:
    # envfns.env_kwargs: HalfCheetah's reward needs x in the observation (18 dims, not 17).
    env = load_sequence("halfcheetah_body").make_env(1)
    assert env.observation_space.shape == (18,)


def _pendulum_trajectory(env: gym.Env) -> np.ndarray:
    env.reset(seed=5)
    out = []
    for k in range(15):
        obs, *_ = env.step(np.array([0.4 if k % 6 < 3 else -0.4], dtype=np.float32))
        out.append(obs)
    return np.array(out)


def test_pendulum_tasks_differ_in_physics() -> None:
    seq = load_sequence("pendulum")
    trajectories = [_pendulum_trajectory(seq.make_env(t)) for t in range(len(seq.tasks))]
    for t in range(1, len(seq.tasks)):
        assert np.abs(trajectories[t] - trajectories[0]).max() > 1e-3, seq.tasks[t].name
    models = [_u(seq.make_env(t)).model for t in range(len(seq.tasks))]
    assert models[3].opt.gravity[2] == pytest.approx(-4.905)
    assert models[2].body_mass[2] == pytest.approx(2 * models[0].body_mass[2])
    # long_pole: 1.5x the pole's length with the nominal mass kept.
    assert models[1].geom_size[-1, 1] == pytest.approx(1.5 * models[0].geom_size[-1, 1])
    assert models[1].body_mass[2] == pytest.approx(models[0].body_mass[2], rel=1e-3)


def test_pendulum_gravity_sequence_sets_g() -> None:
    seq = load_sequence("pendulum_gravity")
    assert [_u(seq.make_env(t)).g for t in range(5)] == [10.0, 12.0, 14.0, 16.0, 18.0]


def test_pusher_tasks_change_how_the_object_slides() -> None:
    # Give the object the same push (x velocity 1 m/s) in every task and see how far it slides.
    seq = load_sequence("pusher")
    travel = []
    for t in range(len(seq.tasks)):
        env = seq.make_env(t)
        env.reset(seed=0)
        u = _u(env)
        slidex = u.model.joint("obj_slidex")
        qpos, qvel = u.data.qpos.copy(), u.data.qvel.copy()
        qvel[slidex.dofadr[0]] = 1.0
        u.set_state(qpos, qvel)
        x0 = float(u.data.qpos[slidex.qposadr[0]])
        for _ in range(5):
            env.step(np.zeros(7, dtype=np.float32))
        travel.append(float(u.data.qpos[slidex.qposadr[0]]) - x0)
    nominal, heavy, x_drag, y_drag, slippery = travel
    assert heavy > 2 * nominal  # mass (beside the joint armature 0.04) carries it on against the damping
    assert x_drag < 0.5 * nominal  # 5x the viscous drag
    assert y_drag == pytest.approx(nominal, abs=1e-6)  # y damping leaves x motion alone
    assert slippery > 1.5 * nominal  # a fifth of the drag, with some dry friction


def _write(tmp_path: Path, doc: Any) -> str:
    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


GOOD_TASK = {"name": "a", "edits": [{"kind": "body_mass", "body": "torso", "scale": 2.0}]}


@pytest.mark.parametrize(
    ("tasks", "extra", "message"),
    [
        (
            [
                {"name": "a"},
                {"name": "b"},
                {"name": "c", "edits": [{"kind": "body_mass", "body": "torsoo", "scale": 2}]},
            ],
            {},
            r"^sequence bad tasks\[2\]\.edits\[0\]\.body = 'torsoo' is not a body of HalfCheetah-v5 \(did you mean torso\?\); bodies: ",
        ),
        (
            [GOOD_TASK, {"name": "b", "edits": [{"kind": "body_size", "body": "torso", "scale": 0}]}],
            {},
            r"^sequence bad tasks\[1\]\.edits\[0\]\.scale = 0 must be > 0",
        ),
        (
            [GOOD_TASK, {"name": "b", "edits": [{"kind": "body_size", "body": "torso", "scale": -0.5}]}],
            {},
            r"^sequence bad tasks\[1\]\.edits\[0\]\.scale = -0.5 must be > 0",
        ),
        (
            [GOOD_TASK, {"name": "b", "env": "HalfCheetah-v55"}],
            {},
            r"^sequence bad tasks\[1\]\.env: env 'HalfCheetah-v55' is not a registered Gymnasium id \(did you mean",
        ),
        (
            [{"name": "a", "edits": [{"kind": "mass", "body": "torso", "scale": 2}]}],
            {},
            r"^sequence bad tasks\[0\]\.edits\[0\]\.kind = 'mass' is not an edit kind",
        ),
        (
            [GOOD_TASK, {"name": "b", "edit": []}],
            {},
            r"^sequence bad tasks\[1\]\.edit is not a task field \(did you mean edits",
        ),
        ([], {}, r"^sequence bad tasks = \[\] is not a non-empty list"),
        ([GOOD_TASK], {"taks": 1}, r"^sequence bad taks is not a sequence field \(did you mean tasks"),
        (
            [GOOD_TASK, {"name": "b", "env": "Pusher-v5"}],
            {},
            r"^sequence bad tasks\[1\]\.env = Pusher-v5 has observation/action",
        ),
        ([GOOD_TASK, GOOD_TASK], {}, r"^sequence bad tasks\[1\]\.name = 'a' repeats an earlier task's name"),
        (
            [{"name": "a", "gym_kwargs": {"no_such_kwarg": 1}}],
            {},
            r"^sequence bad tasks\[0\]\.gym_kwargs = \{'no_such_kwarg': 1\} is not accepted by HalfCheetah-v5",
        ),
    ],
)
def test_bad_sequences_fail_before_work_with_one_line(
    tmp_path: Path, tasks: list[Any], extra: dict[str, Any], message: str
) -> None:
    path = _write(tmp_path, {"name": "bad", "env": "HalfCheetah-v5", "tasks": tasks, **extra})
    with pytest.raises(UserError, match=message) as info:
        load_sequence(path)
    assert "\n" not in str(info.value)


def test_unknown_sequence_names_list_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(
        UserError, match=r"sequence=pendulm is not a shipped sequence \(did you mean pendulum"
    ):
        load_sequence("pendulm")
    with pytest.raises(UserError, match="does not exist"):
        load_sequence(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "broken.yaml"
    bad.write_text("tasks: [a\n")
    with pytest.raises(UserError, match="is not valid YAML"):
        load_sequence(str(bad))


def test_go2_payload_sequence_changes_load_and_leg_strength() -> None:
    seq = load_sequence("go2_payload")
    heights, calf_torque = [], []
    for t in range(len(seq.tasks)):
        env = seq.make_env(t)
        env.reset(seed=0)
        u = _u(env)
        action = np.zeros(12, dtype=np.float32)
        action[2] = 5.0  # FR calf far from its default: the PD asks for more than half its 45 N m limit
        dof = u.mj_model.joint("FR_calf_joint").dofadr[0]
        peak = 0.0
        for _ in range(5):
            env.step(action)
            peak = max(peak, abs(float(u.backend.datas[0].qfrc_actuator[dof])))
        heights.append(float(u.backend.datas[0].qpos[2]))
        calf_torque.append(peak)
    nominal, p3, p6, weak = range(4)
    assert heights[p6] < heights[p3] < heights[nominal]  # the trunk sags under the payload
    assert calf_torque[weak] == pytest.approx(45.43 / 2, rel=1e-6)
    assert calf_torque[weak] < calf_torque[nominal]
