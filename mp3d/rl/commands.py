"""`mp3d rl train | eval`: thin verbs over mp3d.rl, built with mp3d.cli's helpers and
registered in mp3d.cli through add_rl_commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from mp3d.cli import (
    COMMANDS,
    DEVICE_HELP,
    _add_command,
    _field_default,
    _resumed,
    _trainer_config,
    add_trainer_options,
    device_type,
    int_in,
    number_in,
)

DEEP_ONLY = ("lr",)
TABULAR_ONLY = ("alpha",)


def _default_steps(algorithm: str) -> int:
    from mp3d.rl.config import TABULAR_DEFAULTS, config_class

    if algorithm in TABULAR_DEFAULTS:
        return TABULAR_DEFAULTS[algorithm]["steps"]
    return _field_default(config_class(algorithm), "steps")


def _print_evaluation(evaluation: dict | None) -> None:
    if evaluation is None:
        print("evaluation  none (--eval-episodes 0)")
        return
    print(
        f"evaluation  mean return {evaluation['mean_return']:.2f} ± "
        f"{evaluation['std_return']:.2f} over {evaluation['episodes']} episodes (min "
        f"{evaluation['min_return']:.4g}, max {evaluation['max_return']:.4g}, mean length "
        f"{evaluation['mean_length']:.1f})"
    )


def _print_exact(exact: dict | None) -> None:
    if not exact:
        return
    parts = [f"optimal start value {exact['optimal_start_value']:.6g}"]
    if "bellman_residual" in exact:
        parts.append(f"Bellman residual {exact['bellman_residual']:.3g}")
    if "max_value_error" in exact:
        parts.append(f"max value error {exact['max_value_error']:.3g}")
    if "rms_value_error" in exact:
        parts.append(f"RMS value error {exact['rms_value_error']:.3g}")
    if "greedy_start_value" in exact:
        parts.append(f"greedy policy's start value {exact['greedy_start_value']:.6g}")
    if "policy_optimal" in exact:
        parts.append("policy optimal" if exact["policy_optimal"] else "policy not optimal")
    print(f"exact       {', '.join(parts)}")


def rl_train(args: argparse.Namespace) -> int:
    """Trains ALGORITHM on --env (a gymnasium id, or frozenlake, cliffwalking, taxi,
    cartpole, pendulum), then plays --eval-episodes evaluation episodes seeded apart from
    training. A step is: vi a sweep, pi an improvement round (both stop once converged);
    mc/td/sarsa/qlearning an episode; dqn an environment step; reinforce an update from a
    batch of episodes; a2c an update from a rollout in parallel environments. Writes
    OUT/checkpoint.pt (resumed), OUT/returns.csv (every training episode) and
    OUT/metrics.json (the evaluation; for tabular methods, the exact solution compared)."""
    from mp3d.rl.config import DEEP, TABULAR, config_class
    from mp3d.rl.train import train_rl

    algorithm = args.algorithm
    fields = {"algorithm": algorithm, "eval_episodes": args.eval_episodes}
    for name, value in (("env", args.env), ("gamma", args.gamma), ("lr", args.lr)):
        if value is not None:
            fields[name] = value
    if args.alpha is not None:
        fields["alpha"] = args.alpha
    for names, allowed in ((DEEP_ONLY, DEEP), (TABULAR_ONLY, TABULAR)):
        for name in names:
            if name in fields and algorithm not in allowed:
                raise ValueError(
                    f"--{name}: only {', '.join(allowed)} take it, got algorithm {algorithm!r}"
                )
    args.default_steps = _default_steps(algorithm)
    config = _trainer_config(config_class(algorithm), args, **fields)
    agent = train_rl(config, args.out, args.device, not args.quiet, args.fresh)
    stats = agent.train_stats
    done = " (converged)" if stats["converged"] else ""
    print(
        f"trained     {algorithm} on {agent.env_id}: {stats['steps']} steps{done}, "
        f"{stats['env_steps']} env steps, {stats['episodes']} episodes in "
        f"{stats['seconds']:.1f} s{_resumed(stats)}"
    )
    _print_evaluation(agent.evaluation)
    _print_exact(agent.exact)
    out = Path(args.out)
    print(f"returns     {out / 'returns.csv'}")
    print(f"metrics     {out / 'metrics.json'}")
    print(f"checkpoint  {out / 'checkpoint.pt'}")
    return 0


def rl_eval(args: argparse.Namespace) -> int:
    """Plays --episodes evaluation episodes with a trained agent (CKPT: its checkpoint or
    run folder): greedy actions for tabular and DQN agents, the policy's mode for
    REINFORCE and A2C (the evaluated policy itself for td), seeded apart from training."""
    from mp3d.rl.evaluation import evaluate
    from mp3d.rl.train import load_agent

    agent = load_agent(args.checkpoint, args.device)
    evaluation = evaluate(agent, args.episodes, seed=args.seed)
    stats = agent.train_stats
    print(
        f"agent       {agent.algorithm} on {agent.env_id}, {stats['steps']} steps, "
        f"{stats['env_steps']} env steps ({args.checkpoint})"
    )
    _print_evaluation(evaluation)
    if args.json is not None:
        from mp3d.rendering import write_json

        print(f"json        {write_json(args.json, evaluation)}")
    return 0


def add_rl_commands(commands) -> None:
    """`mp3d rl train` and `mp3d rl eval`."""
    from mp3d.rl.config import ALGORITHMS, SUMMARIES, RLConfig

    rl = commands.add_parser("rl", help=COMMANDS["rl"], description="Reinforcement learning.")
    rl_commands = rl.add_subparsers(dest="rl_command", metavar="COMMAND", required=True)
    p = _add_command(rl_commands, "train", rl_train, "train an agent on a gymnasium env")
    listing = "; ".join(f"{name}: {SUMMARIES[name]}" for name in ALGORITHMS)
    p.add_argument("algorithm", choices=ALGORITHMS, metavar="ALGORITHM", help=listing)
    p.add_argument(
        "--env",
        default=None,
        help="gymnasium environment id or alias (default: CliffWalking-v1 for the tabular "
        "methods, CartPole-v1 for the deep ones)",
    )
    p.add_argument(
        "--gamma",
        type=number_in(0.0, 1.0),
        default=None,
        help=f"discount (default: {_field_default(RLConfig, 'gamma')})",
    )
    p.add_argument(
        "--lr",
        type=number_in(0.0, 1.0, open_low=True),
        default=None,
        help="Adam learning rate of dqn, reinforce, a2c (default: the algorithm's own)",
    )
    p.add_argument(
        "--alpha",
        type=number_in(0.0, 1.0, open_low=True),
        default=None,
        help="step size of the tabular learners (default: the algorithm's own)",
    )
    p.add_argument(
        "--eval-episodes",
        type=int_in(0, 100_000),
        default=_field_default(RLConfig, "eval_episodes"),
        help="evaluation episodes after training (default: %(default)s)",
    )
    add_trainer_options(
        p,
        None,
        steps_text="vi 100000 sweeps, pi 1000 rounds (both stop once converged); mc 5000, "
        "td 2000, sarsa and qlearning 500 episodes; dqn 50000 env steps; reinforce 500 "
        "updates of 4 episodes; a2c 5000 updates of 8 envs x 8 steps",
    )

    p = _add_command(rl_commands, "eval", rl_eval, "evaluation episodes of a trained agent")
    p.add_argument("checkpoint", metavar="CKPT", help="checkpoint file, or its run folder")
    p.add_argument(
        "--episodes",
        type=int_in(1, 1_000_000),
        default=100,
        help="evaluation episodes (default: %(default)s)",
    )
    p.add_argument("--seed", type=int_in(0), default=0, help="random seed (default: 0)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--device", type=device_type, default=None, help=DEVICE_HELP)
