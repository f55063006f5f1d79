"""Evaluation episodes: an agent plays `episodes` episodes of its environment, up to
`parallel` at a time (one batched action query per step), each reset with a seed from
EVAL_SEED_OFFSET on, apart from every training episode's seed."""

from __future__ import annotations

import numpy as np

from mp3d.rl.agents import Agent
from mp3d.rl.envs import EVAL_SEED_OFFSET, make_env
from mp3d.training import check_int

# Evaluation episodes longer than this are cut (environments without a time limit).
MAX_EVAL_STEPS = 10_000


def evaluate(
    agent: Agent, episodes: int = 100, seed: int = 0, parallel: int = 100, env=None
) -> dict:
    """Plays `episodes` evaluation episodes; returns mean_return, std_return, min_return,
    max_return, mean_length, episodes, and the per-episode returns and lengths (lists).
    `env` overrides the agent's environment (a gymnasium id or alias)."""
    check_int("episodes", episodes, 1, 1_000_000)
    check_int("parallel", parallel, 1, 10_000)
    name = env or agent.env_id
    rng = np.random.default_rng([seed, EVAL_SEED_OFFSET])
    returns: list[float] = []
    lengths: list[int] = []
    envs = [make_env(name) for _ in range(min(parallel, episodes))]
    next_episode = 0
    while next_episode < episodes:
        batch = envs[: min(len(envs), episodes - next_episode)]
        observations = []
        for i, e in enumerate(batch):
            observation, _ = e.reset(seed=EVAL_SEED_OFFSET + seed * 1_000_003 + next_episode + i)
            observations.append(observation)
        next_episode += len(batch)
        observations = np.stack(observations)
        active = np.ones(len(batch), dtype=bool)
        totals = np.zeros(len(batch))
        steps = np.zeros(len(batch), dtype=np.int64)
        while active.any():
            index = np.flatnonzero(active)
            actions = agent.act(observations[index], rng)
            for j, i in enumerate(index):
                observation, reward, terminated, truncated, _ = batch[i].step(actions[j])
                observations[i] = observation
                totals[i] += reward
                steps[i] += 1
                if terminated or truncated or steps[i] >= MAX_EVAL_STEPS:
                    active[i] = False
        returns.extend(totals.tolist())
        lengths.extend(steps.tolist())
    for e in envs:
        e.close()
    values = np.asarray(returns)
    return {
        "mean_return": float(values.mean()),
        "std_return": float(values.std()),
        "min_return": float(values.min()),
        "max_return": float(values.max()),
        "mean_length": float(np.mean(lengths)),
        "episodes": episodes,
        "returns": returns,
        "lengths": lengths,
    }
