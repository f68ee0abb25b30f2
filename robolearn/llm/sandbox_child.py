"""The sandbox child process: runs one policy program under resource limits and reports as JSON.

Started by robolearn.llm.sandbox as ``python -I -c ...`` with the request on stdin. Everything the
program needs (numpy, and gymnasium plus the env for rollouts) is imported and created first; then the
budgets and the walls go up, in this order, and only then is the program compiled and executed:

- the network namespace (``netns``, robolearn.llm.walls), while the child may still unshare;
- the budgets: RLIMIT_CPU (CPU seconds used so far + the budget; SIGXCPU ends the process), RLIMIT_AS
  (the address space in use so far + the memory budget) and RLIMIT_CORE 0;
- ``rlimits``: RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_NPROC 0;
- ``privileges``: root drops to nobody;
- ``seccomp``: the syscall filter, last, since it refuses setrlimit and unshare;
- ``guards``: the program is compiled with RestrictedPython's guards (robolearn.llm.runtime).

The child writes two JSON lines on its stdout: ``{"walls": {...}}`` as soon as the walls are up (so the
parent knows which walls held even when the program is then killed), and the result; the program
itself has no print.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from typing import Any

import numpy as np

from robolearn.llm.runtime import describe_exception, guards_status, load_policy_function
from robolearn.llm.walls import (
    DISABLED,
    WALL_NAMES,
    SeccompFilter,
    drop_privileges,
    isolate_network,
    limit_files_and_processes,
)


def _vm_size_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def apply_limits(cpu_s: float, memory_mb: float) -> None:
    """Put the CPU, memory and core-dump budgets on this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = usage.ru_utime + usage.ru_stime
    cpu_soft = math.ceil(used + cpu_s)
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_soft, cpu_soft + 1))
    vm = _vm_size_bytes()
    # Headroom over what the interpreter, numpy (and the env) already mapped; an absolute cap when
    # /proc is not available.
    budget = int(memory_mb * 1024 * 1024)
    limit = vm + budget if vm is not None else budget
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def put_up_walls(request: dict[str, Any]) -> dict[str, str]:
    """Apply the budgets and every wall the request does not disable; report each wall's state on
    stdout at once, and return it."""
    disabled = set(request.get("disabled_walls", ()))
    unknown = disabled - set(WALL_NAMES)
    if unknown:
        raise ValueError(f"unknown sandbox walls {sorted(unknown)}")
    walls = dict.fromkeys(WALL_NAMES, DISABLED)
    # Loading libseccomp and libc looks them up with a subprocess: before fork is refused.
    seccomp_filter = SeccompFilter() if "seccomp" not in disabled else None
    if "netns" not in disabled:
        walls["netns"] = isolate_network()
    apply_limits(request["cpu_s"], request["memory_mb"])
    if "rlimits" not in disabled:
        walls["rlimits"] = limit_files_and_processes()
    if "privileges" not in disabled:
        walls["privileges"] = drop_privileges()
    if seccomp_filter is not None:
        walls["seccomp"] = seccomp_filter.load()
    if "guards" not in disabled:
        walls["guards"] = guards_status()
    sys.stdout.write(json.dumps({"walls": walls}) + "\n")
    sys.stdout.flush()
    return walls


def _load(request: dict[str, Any], walls: dict[str, str]) -> Any:
    return load_policy_function(request["source"], check=False, guards=walls["guards"] != DISABLED)


def _to_jsonable(action: np.ndarray) -> list[Any]:
    return [float(x) for x in action.ravel()]


def _probe(request: dict[str, Any]) -> dict[str, Any]:
    observations = [np.asarray(o, dtype=np.float64) for o in request["observations"]]
    walls = put_up_walls(request)
    try:
        fn = _load(request, walls)
    except MemoryError:
        return {"error": "module code ran out of memory", "kind": "memory"}
    except Exception as exc:
        return {"error": f"module code raised {describe_exception(exc)}", "kind": "exception"}
    actions: list[dict[str, Any]] = []
    times: list[float] = []
    for i, obs in enumerate(observations + observations[:1]):
        try:
            start = time.perf_counter()
            out = fn(obs.copy())
            elapsed = time.perf_counter() - start
            action = np.asarray(out, dtype=np.float64)
        except MemoryError:
            return {"error": f"observation #{i}: ran out of memory", "kind": "memory"}
        except RecursionError:
            return {"error": f"observation #{i}: recursion too deep", "kind": "exception"}
        except Exception as exc:
            return {
                "error": f"observation #{i}: policy raised {describe_exception(exc)}",
                "kind": "exception",
            }
        if action.size > 10_000:
            return {"error": f"observation #{i}: returned {action.size} values", "kind": "shape"}
        actions.append({"shape": list(action.shape), "values": _to_jsonable(action)})
        if i < len(observations):
            times.append(elapsed)
    return {"actions": actions, "times": times}


def _rollout(request: dict[str, Any]) -> dict[str, Any]:
    from robolearn.llm.screen import action_bounds, make_env

    env = make_env(request["env_id"], request.get("env_kwargs"))
    low, high = action_bounds(env)
    shape = low.shape
    env.reset(seed=int(request["seed"]))  # lazily created buffers exist before the limits go on
    walls = put_up_walls(request)
    try:
        fn = _load(request, walls)
    except MemoryError:
        return {"error": "module code ran out of memory", "kind": "memory"}
    except Exception as exc:
        return {"error": f"module code raised {describe_exception(exc)}", "kind": "exception"}
    returns: list[float] = []
    lengths: list[int] = []
    clipped = 0
    total = 0
    max_steps = request.get("max_steps")
    for episode in range(int(request["episodes"])):
        obs, _ = env.reset(seed=int(request["seed"]) + episode)
        episode_return = 0.0
        steps = 0
        while True:
            try:
                action = np.asarray(fn(np.array(obs, dtype=np.float64)), dtype=np.float64)
            except MemoryError:
                return {"error": f"episode {episode} step {steps}: ran out of memory", "kind": "memory"}
            except Exception as exc:
                where = f"episode {episode} step {steps}"
                return {"error": f"{where}: policy raised {describe_exception(exc)}", "kind": "exception"}
            if action.shape != shape:
                return {
                    "error": f"episode {episode} step {steps}: returned shape {action.shape}, expected {shape}",
                    "kind": "shape",
                }
            if not np.isfinite(action).all():
                return {
                    "error": f"episode {episode} step {steps}: returned a non-finite action",
                    "kind": "nan",
                }
            outside = (action < low) | (action > high)
            clipped += int(outside.sum())
            total += action.size
            obs, reward, terminated, truncated, _ = env.step(
                np.clip(action, low, high).astype(env.action_space.dtype)
            )
            episode_return += float(reward)
            steps += 1
            if terminated or truncated or (max_steps is not None and steps >= int(max_steps)):
                break
        returns.append(episode_return)
        lengths.append(steps)
    return {"returns": returns, "lengths": lengths, "clipped_fraction": clipped / max(total, 1)}


def main() -> None:
    """Read one request from stdin, run it, print one JSON line."""
    out = sys.stdout
    request = json.loads(sys.stdin.read())
    mode = request.get("mode")
    try:
        if mode == "probe":
            result = _probe(request)
        elif mode == "rollout":
            result = _rollout(request)
        else:
            result = {"error": f"unknown sandbox mode {mode!r}", "kind": "internal"}
    except MemoryError:
        result = {"error": "ran out of memory", "kind": "memory"}
    out.write(json.dumps(result) + "\n")
    out.flush()


if __name__ == "__main__":
    main()
