"""Reinforcement learning quality: CartPole-v1 solved by mp3d's DQN and A2C, side by side in
the same run with stable-baselines3's DQN and A2C (if installed) at the rl-baselines3-zoo
hyperparameters for CartPole-v1; then the tabular methods against the exact solution.

Solve criterion, the same for every agent: every --eval-every environment steps the agent's
deterministic policy (argmax Q, or the policy's mode) plays 10 evaluation episodes (seeded
apart from training); when those average at least 475, it plays 100, and the agent is
solved once the 100 average at least 475. Reported: environment steps and training wall
time to solve (evaluation time left out), each run capped at --max-minutes.

rl-baselines3-zoo hyperparameters for CartPole-v1 (hyperparams/dqn.yml and a2c.yml):
- DQN: 5e4 timesteps, lr 2.3e-3, batch 64, buffer 100000, learning_starts 1000, gamma 0.99,
  target_update_interval 10, train_freq 256, gradient_steps 128, exploration_fraction 0.16,
  exploration_final_eps 0.04, net_arch [256, 256];
- A2C: 8 envs, 5e5 timesteps, ent_coef 0.0 (SB3's defaults otherwise: lr 7e-4, n_steps 5,
  RMSprop, gamma 0.99, vf_coef 0.5, max_grad_norm 0.5).

Tabular (FrozenLake-v1 and CliffWalking-v1, gamma 0.99): value iteration's sweeps and
policy iteration's rounds to converge and their Bellman residuals; for MC control, SARSA and
Q-learning the first episode after which the greedy policy is optimal from the start state
(checked every 10 episodes, exactly, from the environment's model) and the final greedy
policy's start value against the optimal one; TD(0)'s value error against the exact values
of the policy it evaluates (epsilon-soft optimal, epsilon 0.2), over the reachable states.

Measured (`python bench/quality_rl.py --seeds 0 1 2`, 1 thread, busy shared 2-core CPU at a
load average of 2.4-3.7; about 8 minutes in all), env steps and training seconds to solve:

    seed          0             1             2          median
    mp3d dqn   12.5k 20.7 s  12.5k 18.3 s  17.5k 16.9 s  12.5k 18.3 s
    sb3 dqn     5.0k  9.7 s  40.0k 72.3 s  27.5k 34.7 s  27.5k 34.7 s
    mp3d a2c    7.6k  1.3 s  22.5k  2.1 s  12.5k  1.1 s  12.5k  1.3 s
    sb3 a2c    27.5k  6.6 s  10.0k  1.5 s  15.0k  2.3 s  15.0k  2.3 s

Tabular (seed 0): vi converges in 704 sweeps on FrozenLake (residual 9.5e-13) and 15 on
CliffWalking, pi in 7 and 15 rounds, both to the optimal policy; Q-learning's greedy policy
is optimal from the start after 50 CliffWalking episodes (start value -12.25, the cliff
edge) and SARSA's takes the safe path (-15.71); on FrozenLake Q-learning reaches the
optimal start value 0.542 in 500 episodes, MC control 0.520 in 20,000, SARSA at the
CliffWalking settings 0.184; TD(0) after 2,000 episodes: RMS value error 0.034 (values up
to 0.71) on FrozenLake, 5.5 (start value -75.4) on CliffWalking.

    python bench/quality_rl.py                       # everything, seed 0
    python bench/quality_rl.py --seeds 0 1 2 --skip tabular
    python bench/quality_rl.py --skip sb3 --max-minutes 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from mp3d.rl import Agent, evaluate, make_config, train_rl
from mp3d.rl import dynamic_programming as dp
from mp3d.rl.envs import make_env, tabular_model

ENV = "CartPole-v1"
SOLVED = 475.0
SCREEN_EPISODES, SOLVE_EPISODES = 10, 100
ZOO = {
    "dqn": dict(
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
    ),
    "a2c": dict(ent_coef=0.0),
}
ZOO_TIMESTEPS = {"dqn": 50_000, "a2c": 500_000}
ZOO_ENVS = {"dqn": 1, "a2c": 8}


class SolveWatch:
    """The solve criterion, checked whenever an agent has taken another `every` env steps;
    keeps the evaluation time apart from the training time."""

    def __init__(self, every: int, max_minutes: float, seed: int) -> None:
        self.every, self.seed = every, seed
        self.deadline = time.perf_counter() + 60 * max_minutes
        self.next_check = every
        self.eval_seconds = 0.0
        self.started = time.perf_counter()
        self.solved_at: int | None = None
        self.last_mean = float("nan")

    def __call__(self, agent: Agent, env_steps: int) -> bool:
        """True to stop: solved, or out of time."""
        if time.perf_counter() > self.deadline:
            return True
        if env_steps < self.next_check:
            return False
        self.next_check = (env_steps // self.every + 1) * self.every
        start = time.perf_counter()
        result = evaluate(agent, SCREEN_EPISODES, seed=self.seed)
        if result["mean_return"] >= SOLVED:
            result = evaluate(agent, SOLVE_EPISODES, seed=self.seed)
        self.eval_seconds += time.perf_counter() - start
        self.last_mean = result["mean_return"]
        if result["episodes"] == SOLVE_EPISODES and result["mean_return"] >= SOLVED:
            self.solved_at = env_steps
            return True
        return False

    def train_seconds(self) -> float:
        return time.perf_counter() - self.started - self.eval_seconds


def run_mp3d(algorithm: str, seed: int, args) -> dict:
    config = make_config(algorithm, env=ENV, seed=seed, eval_episodes=0)
    watch = SolveWatch(args.eval_every, args.max_minutes, seed)
    train_rl(
        config, progress=False, callback=lambda agent, trainer: watch(agent, trainer.env_steps)
    )
    return {"watch": watch, "seconds": watch.train_seconds()}


class SB3Agent(Agent):
    """A stable-baselines3 model seen as an mp3d agent (its deterministic actions)."""

    def __init__(self, model, name: str) -> None:
        super().__init__(name, ENV)
        self.model = model

    def act(self, observations, rng):
        return self.model.predict(observations, deterministic=True)[0]


def run_sb3(algorithm: str, seed: int, args) -> dict:
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    watch = SolveWatch(args.eval_every, args.max_minutes, seed)
    env = make_vec_env(ENV, n_envs=ZOO_ENVS[algorithm], seed=seed)
    model_class = sb3.DQN if algorithm == "dqn" else sb3.A2C
    model = model_class("MlpPolicy", env, seed=seed, device="cpu", **ZOO[algorithm])
    agent = SB3Agent(model, f"sb3-{algorithm}")

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            return not watch(agent, self.num_timesteps)

    watch.started = time.perf_counter()
    model.learn(total_timesteps=ZOO_TIMESTEPS[algorithm], callback=Watch())
    return {"watch": watch, "seconds": watch.train_seconds()}


def cartpole(args) -> None:
    print(
        f"\n{ENV}: solved = mean return >= {SOLVED:g} over {SOLVE_EPISODES} evaluation "
        f"episodes, checked every {args.eval_every} env steps ({SCREEN_EPISODES}-episode "
        f"screen first); training time excludes evaluation; cap {args.max_minutes:g} min"
    )
    runners = []
    for algorithm in ("dqn", "a2c"):
        if algorithm not in args.skip:
            runners.append((f"mp3d {algorithm}", run_mp3d, algorithm))
            runners.append((f"sb3 {algorithm} (zoo)", run_sb3, algorithm))
    if "sb3" not in args.skip:
        try:
            import stable_baselines3  # noqa: F401
        except ImportError:
            print("stable-baselines3 not installed: no peer rows (pip install mp3d[peers])")
            args.skip.append("sb3")
    if "sb3" in args.skip:
        runners = [runner for runner in runners if runner[1] is not run_sb3]
    print(f"{'agent':<16}{'seed':>5}{'solved':>8}{'env steps':>11}{'train s':>9}{'last eval':>11}")
    table = {}
    for seed in args.seeds:
        for name, runner, algorithm in runners:
            result = runner(algorithm, seed, args)
            watch = result["watch"]
            solved = watch.solved_at is not None
            steps = watch.solved_at if solved else "-"
            print(
                f"{name:<16}{seed:>5}{'yes' if solved else 'no':>8}{steps:>11}"
                f"{result['seconds']:>9.1f}{watch.last_mean:>11.1f}",
                flush=True,
            )
            table.setdefault(name, []).append((watch.solved_at, result["seconds"]))
    if len(args.seeds) > 1:
        print("median over seeds (solved runs):")
        for name, rows in table.items():
            done = [(s, t) for s, t in rows if s is not None]
            if done:
                steps, seconds = np.median([s for s, _ in done]), np.median([t for _, t in done])
                print(
                    f"  {name:<16} {len(done)}/{len(rows)} solved, {steps:.0f} env steps, "
                    f"{seconds:.1f} s"
                )


def tabular(args) -> None:
    print("\nTabular methods against the exact solution (gamma 0.99, seed 0)")
    header = f"{'env':<17}{'method':<11}{'steps':>7}{'env steps':>11}{'seconds':>9}  result"
    print(header)
    for env_id in ("FrozenLake-v1", "CliffWalking-v1"):
        env = make_env(env_id)
        model = tabular_model(env)
        env.close()
        optimal = dp.value_iteration(model, 0.99)
        optimal_start = float(optimal.values @ model.start)
        for algorithm in ("vi", "pi", "mc", "td", "sarsa", "qlearning"):
            steps = {"mc": 20_000 if env_id.startswith("Frozen") else 2000}.get(algorithm)
            config = make_config(algorithm, env=env_id, eval_episodes=0, steps=steps)
            first_optimal: list[int] = []

            def check(
                agent,
                trainer,
                first_optimal=first_optimal,
                algorithm=algorithm,
                model=model,
                optimal_start=optimal_start,
            ):
                if algorithm in ("mc", "sarsa", "qlearning") and trainer.episodes % 10 == 0:
                    policy = torch.from_numpy(trainer.learner.policy)
                    try:
                        values = dp.policy_evaluation(model, policy, 0.99)
                    except ValueError:
                        return False
                    optimal_now = abs(float(values @ model.start) - optimal_start) < 1e-6
                    if optimal_now and not first_optimal:
                        first_optimal.append(trainer.episodes)
                    elif not optimal_now:
                        first_optimal.clear()  # count from the last time it became optimal
                return False

            start = time.perf_counter()
            agent = train_rl(config, progress=False, callback=check)
            seconds = time.perf_counter() - start
            stats, exact = agent.train_stats, agent.exact
            if algorithm in ("vi", "pi"):
                what = "sweeps" if algorithm == "vi" else "rounds"
                result = (
                    f"converged in {stats['steps']} {what}, Bellman residual "
                    f"{exact['bellman_residual']:.1e}, policy "
                    f"{'optimal' if exact['policy_optimal'] else 'NOT optimal'}"
                )
            elif algorithm == "td":
                result = (
                    f"{config.td_policy} policy's V: max error {exact['max_value_error']:.3f}, RMS "
                    f"{exact['rms_value_error']:.3f} (exact start value "
                    f"{exact['exact_start_value']:.4f})"
                )
            else:
                when = (
                    f"optimal from episode {first_optimal[0]}" if first_optimal else "not optimal"
                )
                result = (
                    f"greedy start value {exact['greedy_start_value']:.4f} vs optimal "
                    f"{optimal_start:.4f}; {when}"
                )
            print(
                f"{env_id:<17}{algorithm:<11}{stats['steps']:>7}{stats['env_steps']:>11}"
                f"{seconds:>9.2f}  {result}",
                flush=True,
            )


def warm_up() -> None:
    """The first Adam step imports parts of torch for seconds; pay that before timing."""
    layer = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(layer.parameters())
    layer(torch.zeros(1, 2)).sum().backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-every", type=int, default=2500, help="env steps between checks")
    parser.add_argument(
        "--max-minutes", type=float, default=3.0, help="wall-time cap of each CartPole run"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["sb3", "cartpole", "tabular", "dqn", "a2c"],
        help="parts",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: fastest on a shared CPU)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{args.threads} torch thread(s); load average {os.getloadavg()[0]:.2f} "
        f"(timings on a busy machine are slower, but the ratios in one run compare)"
    )
    warm_up()
    if "cartpole" not in args.skip:
        cartpole(args)
    if "tabular" not in args.skip:
        tabular(args)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
