"""Gymnasium environments for mp3d.rl: names, space checks, the exact model of a tabular
environment, per-episode seeds, and a small vector of environments that resets finished
episodes in the same step (so n-step returns never mix two episodes).

gymnasium is imported on first use; without it the error says how to install it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

# Short names (case-insensitive) for the environments the course uses.
ALIASES = {
    "frozenlake": "FrozenLake-v1",
    "frozenlake8x8": "FrozenLake8x8-v1",
    "cliffwalking": "CliffWalking-v1",
    "taxi": "Taxi-v4",
    "cartpole": "CartPole-v1",
    "pendulum": "Pendulum-v1",
}
# Evaluation episodes are seeded from here on, so they never replay a training episode.
EVAL_SEED_OFFSET = 1_000_000_007


def gymnasium():
    """The gymnasium module; ImportError with the install command if it is missing."""
    try:
        import gymnasium as gym
    except ImportError as error:
        raise ImportError(
            "mp3d.rl needs gymnasium: pip install 'gymnasium>=1.0' (it is an mp3d dependency)"
        ) from error
    return gym


def resolve_env_id(name: str) -> str:
    """The gymnasium id for `name` (an alias from ALIASES or a registered id); ValueError
    naming the argument, with close matches, otherwise."""
    gym = gymnasium()
    if not isinstance(name, str) or not name:
        raise ValueError(f"env must be a gymnasium environment id, got {name!r}")
    if name in gym.registry:
        return name
    if name.lower() in ALIASES:
        return ALIASES[name.lower()]
    known = sorted(set(gym.registry) | set(ALIASES.values()))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"env must be a registered gymnasium environment id or one of "
        f"{', '.join(ALIASES)}, got {name!r}{hint}"
    )


def make_env(name: str, **kwargs: Any):
    """A gymnasium environment `name` (see resolve_env_id) made with `kwargs`."""
    return gymnasium().make(resolve_env_id(name), **kwargs)


def episode_seed(seed: int, episode: int) -> int:
    """The reset seed of training episode `episode` of a run seeded `seed` (a resumed run
    draws the same episodes again without storing any generator state)."""
    return int(np.random.SeedSequence([seed, episode]).generate_state(1)[0])


def episode_rng(seed: int, episode: int) -> np.random.Generator:
    """The agent's own random numbers (exploration) for training episode `episode`."""
    return np.random.default_rng([seed, episode, 1])


def is_discrete(space) -> bool:
    """Whether `space` is gymnasium.spaces.Discrete."""
    return isinstance(space, gymnasium().spaces.Discrete)


def is_box(space) -> bool:
    """Whether `space` is a gymnasium.spaces.Box."""
    return isinstance(space, gymnasium().spaces.Box)


def require_spaces(
    env, algorithm: str, observation: str | None = None, action: str | None = None
) -> None:
    """ValueError if `env`'s observation or action space is not of the kind ("discrete",
    "box" or "any") `algorithm` needs, naming both."""
    checks = {"discrete": is_discrete, "box": is_box}
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    for which, kind in (("observation", observation), ("action", action)):
        if kind in (None, "any"):
            continue
        space = getattr(env, f"{which}_space")
        if not checks[kind](space):
            wanted = "a Discrete" if kind == "discrete" else "a Box (continuous)"
            raise ValueError(f"{algorithm} needs {wanted} {which} space; env {env_id} has {space}")
    if is_box(env.observation_space) and len(env.observation_space.shape) != 1:
        raise ValueError(
            f"{algorithm} needs flat (1-D) Box observations; env {env_id} has "
            f"{env.observation_space}"
        )


# ----------------------------------------------------------------------------- tabular model


@dataclass
class TabularModel:
    """The exact model of a finite MDP, from a gymnasium toy-text environment's `P`.

    transitions: [S, A, S] float64, P(s' | s, a) of transitions that do not end the episode
    (so the rows of terminating actions sum to less than 1); rewards: [S, A] float64, the
    expected immediate reward; start: [S] float64, the distribution of the first state.
    """

    transitions: torch.Tensor
    rewards: torch.Tensor
    start: torch.Tensor

    @property
    def n_states(self) -> int:
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        return self.transitions.shape[1]


def tabular_model(env) -> TabularModel:
    """The TabularModel of `env` (its unwrapped `P[s][a]` lists of (probability, next state,
    reward, terminated)); ValueError if it has no such model or non-Discrete spaces."""
    require_spaces(env, "an exact tabular model", observation="discrete", action="discrete")
    base = env.unwrapped
    table = getattr(base, "P", None)
    if not isinstance(table, dict):
        raise ValueError(
            f"env {env.spec.id if env.spec else type(base).__name__} has no transition "
            f"model P (only gymnasium's toy-text environments do), needed by value and "
            f"policy iteration"
        )
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    transitions = torch.zeros(n_states, n_actions, n_states, dtype=torch.float64)
    rewards = torch.zeros(n_states, n_actions, dtype=torch.float64)
    for s in range(n_states):
        for a in range(n_actions):
            for probability, next_state, reward, terminated in table[s][a]:
                rewards[s, a] += probability * reward
                if not terminated:
                    transitions[s, a, int(next_state)] += probability
    start = torch.as_tensor(
        np.asarray(getattr(base, "initial_state_distrib", np.eye(n_states)[0]), dtype=np.float64)
    )
    return TabularModel(transitions, rewards, start)


# ----------------------------------------------------------------------------- vector of envs


class EnvVector:
    """`n` copies of one environment stepped together. A copy whose episode ends is reset in
    the same step: `step` returns the first observation of its next episode and, in
    `final_observations`, the last one of the episode that ended (for bootstrapping past a
    time limit). Episode k of the vector (counted across copies) resets with
    episode_seed(seed, k)."""

    def __init__(self, name: str, n: int, seed: int, first_episode: int = 0) -> None:
        if n < 1:
            raise ValueError(f"n_envs must be >= 1, got {n}")
        self.envs = [make_env(name) for _ in range(n)]
        self.env_id = self.envs[0].spec.id
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space
        self.seed, self.episodes = seed, first_episode
        self.returns = np.zeros(n)
        self.lengths = np.zeros(n, dtype=np.int64)
        self.observations = np.stack([self._reset(env) for env in self.envs])
        self.finished: list[tuple[float, int]] = []  # (return, length) since the last call

    def _reset(self, env) -> np.ndarray:
        observation, _ = env.reset(seed=episode_seed(self.seed, self.episodes))
        env.action_space.seed(episode_seed(self.seed, self.episodes))
        self.episodes += 1
        return np.asarray(observation, dtype=np.float32)

    def step(self, actions: np.ndarray):
        """Steps every copy with actions [n] (or [n, action_dim]); returns (observations
        [n, obs_dim] float32, rewards [n], terminated [n] bool, truncated [n] bool,
        final_observations [n, obs_dim]: the observation each step reached, before a reset)."""
        n = len(self.envs)
        observations = np.empty_like(self.observations)
        finals = np.empty_like(self.observations)
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        for i, (env, action) in enumerate(zip(self.envs, actions)):
            observation, reward, term, trunc, _ = env.step(action)
            finals[i] = observation
            rewards[i], terminated[i], truncated[i] = reward, term, trunc
            self.returns[i] += reward
            self.lengths[i] += 1
            if term or trunc:
                self.finished.append((float(self.returns[i]), int(self.lengths[i])))
                self.returns[i], self.lengths[i] = 0.0, 0
                observation = self._reset(env)
            observations[i] = observation
        self.observations = observations
        return observations, rewards, terminated, truncated, finals

    def pop_finished(self) -> list[tuple[float, int]]:
        """(return, length) of each episode that ended since the last call."""
        finished, self.finished = self.finished, []
        return finished

    def close(self) -> None:
        for env in self.envs:
            env.close()
