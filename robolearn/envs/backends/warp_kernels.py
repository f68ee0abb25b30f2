# Warp kernels are a DSL that Warp compiles; its Python type stubs describe host code, so mypy cannot
# type wp.tid() unpacking or tuple indexing of arrays inside a kernel.
# mypy: disable-error-code="misc, index, operator"
"""Device kernels of the warp backend: the PD law and row writes into per-world arrays."""

from __future__ import annotations

import warp as wp


@wp.kernel
def pd_kernel(
    qpos: wp.array2d[wp.float32],
    qvel: wp.array2d[wp.float32],
    targets: wp.array2d[wp.float32],
    kp: wp.array2d[wp.float32],
    kd: wp.array2d[wp.float32],
    torque_limit: wp.array2d[wp.float32],
    qpos_adr: wp.array[wp.int32],
    qvel_adr: wp.array[wp.int32],
    actuator_ids: wp.array[wp.int32],
    gear: wp.array[wp.float32],
    ctrl: wp.array2d[wp.float32],
    torque: wp.array2d[wp.float32],
) -> None:
    # pd_torque: kp (q* - q) + kd (0 - dq), NaN -> 0, clipped to the symmetric limit.
    world, j = wp.tid()
    q = qpos[world, qpos_adr[j]]
    dq = qvel[world, qvel_adr[j]]
    tau = kp[world, j] * (targets[world, j] - q) + kd[world, j] * (0.0 - dq)
    if wp.isnan(tau):
        tau = 0.0
    limit = wp.abs(torque_limit[world, j])
    tau = wp.clamp(tau, -limit, limit)
    torque[world, j] = tau
    ctrl[world, actuator_ids[j]] = tau / gear[j]


@wp.kernel
def scatter_rows(
    ids: wp.array[wp.int32],
    rows: wp.array2d[wp.float32],
    col0: int,
    out: wp.array2d[wp.float32],
) -> None:
    k, j = wp.tid()
    out[ids[k], col0 + j] = rows[k, j]


@wp.kernel
def add_rows(
    ids: wp.array[wp.int32],
    rows: wp.array2d[wp.float32],
    col0: int,
    out: wp.array2d[wp.float32],
) -> None:
    k, j = wp.tid()
    out[ids[k], col0 + j] = out[ids[k], col0 + j] + rows[k, j]
