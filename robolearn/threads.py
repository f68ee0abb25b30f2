"""Thread policies for training processes, applied before torch (and its OpenMP runtime) loads.

Simulation and learning share the cores: MuJoCo's batch backend steps on its own thread pool, torch
runs its kernels on an OpenMP pool. By default GNU OpenMP workers spin for a while after each
parallel region, waiting for more work; on a 2-core machine those spinning workers take the cores
MuJoCo's threads need, and the two pools slow each other down (issue 15: a PPO update at 512 envs
took 22.2 s instead of 2.0 s). `OMP_WAIT_POLICY=PASSIVE` makes idle OpenMP workers sleep instead.

OpenMP reads its environment once, when the runtime is loaded (at `import torch`), so the training
entry points call `apply_thread_policy()` before anything imports torch; this module imports only
the standard library for that reason. A variable the user has set is never overwritten, and
`ROBOLEARN_THREAD_POLICY=inherit` leaves the environment untouched (docs/agents.md).
"""

from __future__ import annotations

import os
import sys

# The variables set for a training process, each only where the user has not set it.
TRAINING_POLICY: dict[str, str] = {
    # Idle OpenMP workers sleep rather than spin (GNU OpenMP's and LLVM/Intel OpenMP's spelling).
    "OMP_WAIT_POLICY": "PASSIVE",
}
SWITCH = "ROBOLEARN_THREAD_POLICY"
CHOICES = ("passive", "inherit")

# What apply_thread_policy found and did, for summaries and benchmarks.
applied: dict[str, str] = {}


def apply_thread_policy(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set TRAINING_POLICY's variables that are unset, unless ROBOLEARN_THREAD_POLICY=inherit;
    returns the policy in force ({variable: value, ..., "source": ...})."""
    if environ is None and applied:
        return dict(applied)  # applied once per process: a second call would see its own settings
    env = os.environ if environ is None else environ
    choice = env.get(SWITCH, "passive").strip().lower()
    if choice not in CHOICES:
        # Runs before argument parsing: a plain message and exit 2, as a UserError would give.
        print(
            f"error: {SWITCH}={env[SWITCH]} is not allowed; choose one of {', '.join(CHOICES)}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    result: dict[str, str] = {"policy": choice}
    for name, value in TRAINING_POLICY.items():
        if choice == "passive" and name not in env:
            env[name] = value
            result[name] = value
        else:
            result[name] = env.get(name, "unset") + (" (user)" if name in env else "")
    if environ is None:
        applied.clear()
        applied.update(result)
    return result


def summary() -> dict[str, str]:
    """The policy in force, as a run's summary.json records it."""
    return dict(applied) or {"policy": "not applied"}


def torch_loaded() -> bool:
    """Whether torch is already imported (then OpenMP has read its environment already)."""
    return "torch" in sys.modules
