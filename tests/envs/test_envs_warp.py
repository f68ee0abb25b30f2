"""The warp backend on Warp's CPU device: one smoke test with the smallest model (Go2).

Skipped when the `gpu` extra (mujoco-warp, warp-lang) is not installed. The first run compiles
MuJoCo Warp's kernels for the CPU (about 30 s on 2 cores); Warp caches them, and later runs take
a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("warp", reason="backend=warp needs the gpu extra: pip install 'robolearn[gpu]'")
pytest.importorskip("mujoco_warp", reason="backend=warp needs the gpu extra: pip install 'robolearn[gpu]'")

from robolearn.envs.backends.warp_backend import WarpBackend, pd_kernel, wp
from robolearn.envs.vector import make_batched_env
from robolearn.robots.actuators import pd_torque


def test_warp_backend_smoke_on_cpu_matches_the_mujoco_backend() -> None:
    n, steps = 2, 10
    dr = {
        "friction": [0.8, 1.2],
        "joint_friction": [0.5, 1.5],
        "joint_damping": [0.5, 2.0],
        "added_base_mass": [-1, 3],
    }
    kwargs = {"seed": 0, "randomization": dr, "device": "cpu"}
    warp_env = make_batched_env("robolearn/Go2Velocity-v1", n, backend="warp", **kwargs)
    ref_env = make_batched_env("robolearn/Go2Velocity-v1", n, backend="mujoco", **kwargs)
    backend = warp_env.task.backend
    assert isinstance(backend, WarpBackend)
    np.testing.assert_allclose(warp_env.reset(), ref_env.reset(), atol=1e-5)
    # The per-world joint losses and base mass are the reference's per-env model copies.
    models = ref_env.task.backend.models
    for field in ("dof_frictionloss", "dof_damping", "body_mass"):
        expected = np.stack([getattr(m, field) for m in models])
        np.testing.assert_allclose(getattr(backend.m, field).numpy(), expected, rtol=1e-6, err_msg=field)
    assert np.ptp(backend.m.dof_frictionloss.numpy()[:, 6:]) > 0.05
    actions = np.random.default_rng(0).uniform(-0.5, 0.5, (steps, n, 12))
    for a in actions:
        obs, reward, done, _ = warp_env.step(a)
        ref_env.step(a)
        assert np.isfinite(obs).all() and np.isfinite(reward).all() and not done.any()
    # float32 physics and a different solver implementation: close, not equal, after 0.2 s.
    frame, ref = backend.frame(), ref_env.task.backend.frame()
    np.testing.assert_allclose(frame.root_pos, ref.root_pos, atol=5e-3)
    np.testing.assert_allclose(frame.joint_pos, ref.joint_pos, atol=5e-2)

    warp_env.close()
    ref_env.close()

    # The device PD kernel transcribes the one actuator model: same torques as pd_torque, NaN -> 0.
    rng = np.random.default_rng(1)
    nq, nj = 19, 12
    qpos = rng.uniform(-1, 1, (n, nq))
    qvel = rng.uniform(-20, 20, (n, nq - 1))
    qpos[1, backend.layout.index.qpos_adr[3]] = np.nan
    targets, kp, kd = rng.uniform(-1, 1, (n, nj)), rng.uniform(10, 80, (n, nj)), rng.uniform(1, 5, (n, nj))
    limit = np.full((n, nj), 23.7)
    f32 = lambda a: wp.array(np.asarray(a, dtype=np.float32), dtype=wp.float32, device="cpu")  # noqa: E731
    torque = wp.zeros((n, nj), dtype=wp.float32, device="cpu")
    ctrl = wp.zeros((n, nj), dtype=wp.float32, device="cpu")
    index = backend.layout.index
    wp.launch(
        pd_kernel,
        dim=(n, nj),
        inputs=[
            f32(qpos),
            f32(qvel),
            f32(targets),
            f32(kp),
            f32(kd),
            f32(limit),
            backend._qpos_adr,
            backend._qvel_adr,
            backend._act,
            backend._gear,
        ],
        outputs=[ctrl, torque],
        device="cpu",
    )
    expected = pd_torque(targets, qpos[:, index.qpos_adr], qvel[:, index.qvel_adr], kp, kd, limit)
    np.testing.assert_allclose(torque.numpy(), expected, rtol=1e-5, atol=1e-3)
    assert torque.numpy()[1, 3] == 0.0
