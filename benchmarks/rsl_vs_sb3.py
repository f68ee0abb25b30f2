"""SB3 PPO vs agent=rsl_ppo (rsl-rl-lib's PPO under our loop), with and without the thread policy.

    python benchmarks/rsl_vs_sb3.py [--part iteration|pendulum|both] [--envs 512] [--iterations 3]
        [--torch-threads 1,2] [--repeats 1] [--pendulum-steps 100000] [--out outputs/benchmarks]

iteration: Go2Velocity-v1 on the CPU batch backend (`env.kwargs.backend=batch`, MuJoCo's threads =
the cores this process may use), `--envs` envs, both agents with the same rollout (24 steps per env,
rsl_rl's num_steps_per_env), the same update (5 epochs x 4 minibatches) and the same networks
(ELU [512, 256, 128] actor and critic, observation normalisation). Each (agent, thread policy, torch
threads) runs in a fresh process, since OpenMP reads its wait policy when torch loads it:
`passive` is what `python -m robolearn.train` sets (robolearn/threads.py), `spin` leaves
OMP_WAIT_POLICY unset (GNU OpenMP's default: idle workers spin before they sleep). Reported: the
rollout (collect) and update (learn) times of one iteration and env steps/s, the median over
iterations after the first (which warms up); with --repeats R, the median over R rounds that each
run every configuration once.

pendulum: time to the same return on Pendulum-v1, each agent trained by `python -m robolearn.train`
(seed 0): agent=ppo with the RL Zoo's tuned values (configs/agent_tuned/ppo/Pendulum-v1.yaml) and
agent=rsl_ppo with rsl_rl's defaults except gamma 0.9 (the Zoo's for Pendulum) and [64, 64]
networks (SB3's PPO default size). The first wall time (evaluations included) and env step at which
the deterministic evaluation reaches --threshold are read from each run's metrics.jsonl.

Writes rsl_vs_sb3.json and rsl_vs_sb3.md under --out and prints the tables (docs/agents.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GO2 = "Go2Velocity-v1"
STEPS_PER_ENV = 24  # rsl_rl's num_steps_per_env (legged_gym LeggedRobotCfgPPO.runner)
NETS = "[512,256,128]"


def _go2_overrides(agent: str, envs: int, torch_threads: int) -> list[str]:
    common = [f"env={GO2}", "env.kwargs.backend=batch", f"torch_threads={torch_threads}", "seed=0"]
    if agent == "rsl_ppo":
        return [
            *common,
            "agent=rsl_ppo",
            f"agent.n_envs={envs}",
            f"agent.num_steps_per_env={STEPS_PER_ENV}",
            f"agent.actor_hidden_dims={NETS}",
            f"agent.critic_hidden_dims={NETS}",
        ]
    samples = envs * STEPS_PER_ENV
    return [
        *common,
        "agent=ppo",  # the Go2 tuned values (ELU [512,256,128], VecNormalize obs, 5 epochs) merged
        f"agent.n_envs={envs}",
        f"agent.n_steps={STEPS_PER_ENV}",
        f"agent.batch_size={samples // 4}",
        "agent.n_epochs=5",
        "agent.target_kl=null",  # no early stop: both do the full 5 x 4 minibatches
    ]


def worker(agent: str, envs: int, iterations: int, torch_threads: int) -> dict[str, Any]:
    """One process: build the agent on the batch backend and time `iterations` iterations."""
    from robolearn import threads

    policy = dict(threads.applied) if threads.applied else {"policy": "spin"}
    import torch

    from robolearn.config.validate import compose_config, validate_train_config

    cfg = compose_config("train", _go2_overrides(agent, envs, torch_threads))
    validate_train_config(cfg)
    collect: list[float] = []
    learn: list[float] = []
    if agent == "rsl_ppo":
        from robolearn.runs.rsl_trainer import RslTrainer

        with tempfile.TemporaryDirectory() as tmp:
            trainer = RslTrainer(cfg, Path(tmp), "benchmark")
            trainer._build()
            for _ in range(iterations):
                figures = trainer._iterate()
                collect.append(figures["time/collect_s"])
                learn.append(figures["time/learn_s"])
            trainer.env.close()
            trainer.eval_env.close()
    else:
        from robolearn.agents import build_agent
        from robolearn.envs import make_vec_env
        from robolearn.utils.seeding import seed_everything

        torch.set_num_threads(torch_threads)
        seed_everything(0)
        a = cfg.agent
        venv = make_vec_env(cfg.env, a.n_envs, 0, a.normalize_obs, a.normalize_reward, a.gamma)
        model: Any = build_agent(a, venv, seed=0, device="cpu")
        total = iterations * envs * STEPS_PER_ENV
        _, callback = model._setup_learn(total, None, True, "bench", False)
        callback.on_training_start(locals(), globals())
        for _ in range(iterations):
            t0 = time.perf_counter()
            model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
            t1 = time.perf_counter()
            model._update_current_progress_remaining(model.num_timesteps, total)
            model.train()
            collect.append(t1 - t0)
            learn.append(time.perf_counter() - t1)
        venv.close()
    warm = slice(1, None) if iterations > 1 else slice(None)
    c, lrn = statistics.median(collect[warm]), statistics.median(learn[warm])
    samples = envs * STEPS_PER_ENV
    return {
        "agent": agent,
        "thread_policy": policy,
        "torch_threads": torch_threads,
        "envs": envs,
        "collect_s": c,
        "learn_s": lrn,
        "iteration_s": c + lrn,
        "collect_steps_per_s": samples / c,
        "iteration_steps_per_s": samples / (c + lrn),
        "collect_all_s": collect,
        "learn_all_s": learn,
    }


def _run_worker(agent: str, policy: str, envs: int, iterations: int, torch_threads: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "ROBOLEARN_THREAD_POLICY")}
    env["ROBOLEARN_THREAD_POLICY"] = "passive" if policy == "passive" else "inherit"
    args = [sys.executable, __file__, "--worker", agent, "--envs", str(envs), "--iterations", str(iterations)]
    args += ["--torch-threads", str(torch_threads)]
    out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker {agent}/{policy} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["policy"] = policy
    return result


def _median_of_rounds(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = dict(runs[0])
    for key in ("collect_s", "learn_s", "iteration_s", "collect_steps_per_s", "iteration_steps_per_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["rounds"] = [{k: r[k] for k in ("collect_s", "learn_s", "iteration_s")} for r in runs]
    return out


def _pendulum(steps: int, threshold: float, out: Path) -> list[dict[str, Any]]:
    runs = {
        "ppo": ["agent=ppo"],
        "rsl_ppo": [
            "agent=rsl_ppo",
            "agent.gamma=0.9",
            "agent.actor_hidden_dims=[64,64]",
            "agent.critic_hidden_dims=[64,64]",
        ],
    }
    results = []
    for agent, overrides in runs.items():
        run = out / f"pendulum_{agent}"
        args = ["env=Pendulum-v1", *overrides, f"steps={steps}", "seed=0", "eval.every=5000"]
        args += ["eval.episodes=10", "logger.progress=none", f"hydra.run.dir={run}"]
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "robolearn.train", *args], cwd=REPO, check=False)
        if done.returncode != 0:
            raise SystemExit(f"pendulum {agent} failed ({done.returncode})")
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        evals = [
            (r["step"], r["wall_time_s"], r["eval/mean_return"]) for r in rows if "eval/mean_return" in r
        ]
        reached = next(((s, w) for s, w, ret in evals if ret >= threshold), None)
        summary = json.loads((run / "summary.json").read_text())
        results.append(
            {
                "agent": agent,
                "overrides": overrides,
                "steps": summary["steps"],
                "wall_s": round(time.perf_counter() - t0, 1),
                "final_return": summary["eval/mean_return"],
                "best_return": max(ret for _, _, ret in evals),
                "threshold": threshold,
                "steps_to_threshold": reached[0] if reached else None,
                "wall_s_to_threshold": reached[1] if reached else None,
                "evals": evals,
            }
        )
    return results


def _machine() -> dict[str, Any]:
    from robolearn.utils.sysinfo import cpu_info

    info = cpu_info()
    info["load_avg_1m"] = os.getloadavg()[0]
    return info


def render(iteration: list[dict[str, Any]], pendulum: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """The markdown tables."""
    lines = [
        f"machine: {machine.get('model')} {machine.get('cores')} cores, load average {machine['load_avg_1m']:.1f} "
        f"at start (shared with other agents); {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
    ]
    if iteration:
        envs = iteration[0]["envs"]
        lines += [
            f"Go2Velocity-v1, batch backend, {envs} envs, one iteration = {envs} x {STEPS_PER_ENV} = "
            f"{envs * STEPS_PER_ENV} env steps + update (5 epochs x 4 minibatches, ELU [512,256,128])",
            "",
            "| agent | OMP wait policy | torch threads | collect s | learn s | iteration s | collect steps/s | iteration steps/s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in iteration:
            lines.append(
                f"| {r['agent']} | {r['policy']} | {r['torch_threads']} | {r['collect_s']:.2f} | {r['learn_s']:.2f} | "
                f"{r['iteration_s']:.2f} | {r['collect_steps_per_s']:.0f} | {r['iteration_steps_per_s']:.0f} |"
            )
        lines.append("")
    if pendulum:
        lines += [
            f"Pendulum-v1, seed 0: first evaluation (10 episodes, every 5000 steps) at or above "
            f"{pendulum[0]['threshold']}",
            "",
            "| agent | steps run | wall s | final return | best return | steps to threshold | wall s to threshold |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in pendulum:
            lines.append(
                f"| {r['agent']} | {r['steps']} | {r['wall_s']} | {r['final_return']:.1f} | {r['best_return']:.1f} | "
                f"{r['steps_to_threshold'] if r['steps_to_threshold'] is not None else 'not reached'} | "
                f"{r['wall_s_to_threshold'] if r['wall_s_to_threshold'] is not None else 'not reached'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command-line entry: run the parts and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("iteration", "pendulum", "both"), default="both")
    parser.add_argument("--envs", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--torch-threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over every configuration (median)")
    parser.add_argument("--pendulum-steps", type=int, default=100_000)
    parser.add_argument("--threshold", type=float, default=-400.0)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument("--worker", choices=("ppo", "rsl_ppo"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        # The thread policy exactly as `python -m robolearn.train` applies it, before torch loads.
        from robolearn.threads import apply_thread_policy

        if os.environ.get("ROBOLEARN_THREAD_POLICY") != "inherit":
            apply_thread_policy()
        print(json.dumps(worker(args.worker, args.envs, args.iterations, int(args.torch_threads))))
        return
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    iteration: list[dict[str, Any]] = []
    if args.part in ("iteration", "both"):
        # Rounds over every configuration, so that other load on the machine hits all of them alike;
        # each figure is the median over rounds.
        rounds: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for _ in range(args.repeats):
            for threads_n in (int(t) for t in args.torch_threads.split(",")):
                for agent in ("ppo", "rsl_ppo"):
                    for policy in ("spin", "passive"):
                        result = _run_worker(agent, policy, args.envs, args.iterations, threads_n)
                        shown = {k: v for k, v in result.items() if not k.endswith("_all_s")}
                        print(json.dumps(shown), flush=True)
                        rounds.setdefault((agent, policy, threads_n), []).append(result)
        iteration = [_median_of_rounds(runs) for runs in rounds.values()]
    pendulum = (
        _pendulum(args.pendulum_steps, args.threshold, out) if args.part in ("pendulum", "both") else []
    )
    data = {"machine": machine, "iteration": iteration, "pendulum": pendulum, "command": " ".join(sys.argv)}
    tag = "" if args.part == "both" else f"_{args.part}"
    (out / f"rsl_vs_sb3{tag}.json").write_text(json.dumps(data, indent=2) + "\n")
    table = render(iteration, pendulum, machine)
    (out / f"rsl_vs_sb3{tag}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
