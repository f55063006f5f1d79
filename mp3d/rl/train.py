"""Training any mp3d.rl algorithm through the shared training layer (budget, progress bar,
TensorBoard scalars, atomic checkpoints, resume), then evaluation episodes apart from
training; and loading a checkpoint back as an agent.

A run folder holds checkpoint.pt (tensors and plain containers, loaded without running
code), returns.csv (every training episode: index, environment steps so far, return,
length) and metrics.json (the evaluation, the training statistics and, for the tabular
methods, the comparison with the exact solution).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mp3d.rl.agents import Agent
from mp3d.rl.config import TABULAR, RLConfig, make_config
from mp3d.rl.envs import make_env, resolve_env_id
from mp3d.rl.evaluation import evaluate
from mp3d.rl.trainer import EpisodicTrainer, PlanningTrainer, Trainer
from mp3d.training import CHECKPOINT_NAME, TrainingRun, resolve_device

FORMAT, VERSION = "mp3d.rl", 1

# callback(agent, trainer) -> True to stop training (e.g. once a solve criterion holds).
Callback = Callable[[Agent, Trainer], bool]


def make_trainer(config: RLConfig, device: str | torch.device | None = None) -> Trainer:
    """The Trainer of config.algorithm on config.env, fresh; ValueError if the algorithm
    cannot run on that environment (naming both)."""
    if not isinstance(config, RLConfig):
        raise ValueError(f"config must be an RLConfig, got {type(config).__name__}")
    env_id = resolve_env_id(config.env)
    torch.manual_seed(config.seed)  # the networks' initial weights
    if config.algorithm in ("vi", "pi"):
        return PlanningTrainer(config, env_id)
    if config.algorithm in TABULAR:
        return EpisodicTrainer(config, env_id)
    device = resolve_device(device)
    if config.algorithm == "dqn":
        from mp3d.rl.dqn import DQNTrainer

        return DQNTrainer(config, env_id, device)
    from mp3d.rl.policy_gradient import A2CTrainer, ReinforceTrainer

    trainer_class = A2CTrainer if config.algorithm == "a2c" else ReinforceTrainer
    return trainer_class(config, env_id, device)


def train_rl(
    config: RLConfig,
    out_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    fresh: bool = False,
    callback: Callback | None = None,
) -> Agent:
    """Trains config.algorithm on config.env for config.steps and/or config.minutes
    (resuming out_dir's checkpoint), then plays config.eval_episodes evaluation episodes.
    Returns the agent with .train_stats, .evaluation (None without evaluation episodes),
    .exact (tabular: comparison with the exact solution) and .trainer; with out_dir,
    writes there checkpoint.pt, returns.csv and metrics.json."""
    trainer = make_trainer(config, device)
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta={"algorithm": config.algorithm, "env": trainer.env_id},
        desc=f"training {config.algorithm} on {trainer.env_id}",
        progress=progress,
        fresh=fresh,
        kind="RL agent",
    )
    try:
        payload = run.resume()
        if payload is not None:
            trainer.load_state_dict(payload["trainer"])

        def payload_now() -> dict:
            return {
                "algorithm": config.algorithm,
                "env": trainer.env_id,
                "trainer": trainer.state_dict(),
            }

        while run.running() and not trainer.converged:
            scalars = trainer.step(run.progress)
            run.advance(**scalars)
            if run.checkpoint_due():
                run.save(payload_now())
            if callback is not None and callback(trainer.agent(), trainer):
                break
        stats = run.finish(payload_now())
    finally:
        trainer.close()
    stats.update(
        env_steps=trainer.env_steps, episodes=trainer.episodes, converged=trainer.converged
    )
    agent = trainer.agent()
    agent.train_stats = stats
    agent.trainer = trainer
    agent.evaluation = None
    if config.eval_episodes > 0:
        agent.evaluation = evaluate(agent, config.eval_episodes, seed=config.seed)
    agent.exact = exact_comparison(trainer)
    if out_dir is not None:
        _write_outputs(Path(out_dir), agent, trainer)
    return agent


def exact_comparison(trainer: Trainer) -> dict | None:
    """For a tabular trainer: its values against the exact ones (vi/pi: the Bellman
    optimality residual, and whether the policy is the optimal one; mc/sarsa/qlearning: the
    start value of the greedy policy against the optimal one, and whether they agree to
    1e-6; td: max and RMS error of V against the evaluated policy's exact values, over the
    states episodes reach); None for the deep agents."""
    from mp3d.rl import dynamic_programming as dp
    from mp3d.rl.envs import tabular_model

    if trainer.config.algorithm not in TABULAR:
        return None
    env = make_env(trainer.env_id)
    try:
        model = tabular_model(env)
    except ValueError:  # a Discrete env without a model: nothing exact to compare with
        return None
    finally:
        env.close()
    gamma = trainer.config.gamma
    optimal = dp.value_iteration(model, gamma)
    start = model.start
    result = {"optimal_start_value": float(optimal.values @ start)}
    if isinstance(trainer, PlanningTrainer):
        result["bellman_residual"] = trainer.residual()
        result["max_value_error"] = float((trainer.values - optimal.values).abs().max())
        result["policy_optimal"] = bool((trainer.policy == optimal.policy).all())
        return result
    learner = trainer.learner
    if trainer.config.algorithm == "td":
        exact = dp.policy_evaluation(model, torch.from_numpy(learner.q), gamma)
        reached = torch.from_numpy(reachable(model, learner.q))
        error = (torch.from_numpy(learner.values) - exact)[reached]
        result.update(
            max_value_error=float(error.abs().max()),
            rms_value_error=float(error.square().mean().sqrt()),
            exact_start_value=float(exact @ start),
        )
        return result
    policy = torch.from_numpy(learner.policy)
    try:
        values = dp.policy_evaluation(model, policy, gamma)
    except ValueError:  # with gamma = 1, a greedy policy that never ends an episode
        values = torch.full_like(optimal.values, float("-inf"))
    greedy_start = float(values @ start)
    result.update(
        greedy_start_value=greedy_start,
        # Optimal from where episodes start (states it never reaches may keep any action).
        policy_optimal=abs(greedy_start - result["optimal_start_value"]) < 1e-6,
    )
    return result


def reachable(model, policy: np.ndarray) -> np.ndarray:
    """Which states [S] bool an episode can act in under the policy probabilities [S, A],
    from the start distribution (not CliffWalking's cliff cells, say, nor terminal states)."""
    step = np.einsum("sa,sat->st", policy, model.transitions.numpy()) > 0
    seen = model.start.numpy() > 0
    frontier = seen.copy()
    while frontier.any():
        frontier = step[frontier].any(axis=0) & ~seen
        seen |= frontier
    return seen


def _write_outputs(out: Path, agent: Agent, trainer: Trainer) -> None:
    from mp3d.io import atomic_path
    from mp3d.rendering import write_json

    with atomic_path(out / "returns.csv") as tmp:
        steps = np.cumsum(trainer.lengths) if trainer.lengths else []
        lines = ["episode,env_steps,return,length"]
        lines += [
            f"{i},{int(s)},{r:.6g},{n}"
            for i, (s, r, n) in enumerate(zip(steps, trainer.returns, trainer.lengths))
        ]
        tmp.write_text("\n".join(lines) + "\n")
    evaluation = agent.evaluation or {}
    write_json(
        out / "metrics.json",
        {
            "algorithm": agent.algorithm,
            "env": agent.env_id,
            "evaluation": {k: v for k, v in evaluation.items() if k not in ("returns", "lengths")},
            "evaluation_returns": evaluation.get("returns"),
            "exact": agent.exact,
            **agent.train_stats,
        },
    )


def load_agent(path: str | Path, device: str | torch.device | None = None) -> Agent:
    """The agent in a train_rl checkpoint (the file, or its run folder) with .config and
    .train_stats; errors name the file."""
    from mp3d.io import read_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    payload = read_checkpoint(path, FORMAT, VERSION, "RL agent")
    try:
        fields = dict(payload["config"])
        algorithm = fields.pop("algorithm")
        if "hidden" in fields:
            fields["hidden"] = tuple(fields["hidden"])
        config = make_config(algorithm, **fields)
        trainer = make_trainer(config, device)
        trainer.load_state_dict(payload["trainer"])
        trainer.close()
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a usable RL agent checkpoint ({error})") from error
    agent = trainer.agent()
    agent.config = config
    agent.train_stats = {
        "steps": int(payload["step"]),
        "seconds": float(payload["elapsed"]),
        "env_steps": trainer.env_steps,
        "episodes": trainer.episodes,
    }
    return agent
