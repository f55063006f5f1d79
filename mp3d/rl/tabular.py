"""Model-free tabular learning, one episode at a time, on a gymnasium environment with
Discrete observations and actions: first-visit Monte Carlo control, TD(0) prediction,
SARSA and Q-learning (Sutton & Barto, chapters 5 and 6).

Each learner holds float64 tables (Q [S, A], or V [S] for TD(0)) and plays one episode
per `episode(env, rng, epsilon, seed)` call, returning (return, length). Exploration uses
the numpy Generator passed in; the caller seeds it and the environment per episode
(mp3d.rl.envs.episode_seed) so that a run is reproducible and resumable from its tables.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from mp3d.training import check_float

# Episodes that have not ended after this many steps are cut off (a time limit for
# environments without one, e.g. CliffWalking, whose untrained policies can wander long).
MAX_EPISODE_STEPS = 10_000


def epsilon_greedy(q_row: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
    """An action: uniform with probability epsilon, else argmax of q_row [A] (ties broken
    uniformly at random, so untrained tables explore instead of repeating action 0)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(q_row)))
    best = np.flatnonzero(q_row >= q_row.max() - 1e-12)
    return int(best[0] if len(best) == 1 else rng.choice(best))


class TabularLearner(ABC):
    """Shared state of a tabular learner: Q [S, A] float64 (zeros), discount, step size."""

    name = "tabular"

    def __init__(self, n_states: int, n_actions: int, gamma: float, alpha: float) -> None:
        self.gamma = check_float("gamma", gamma, 0.0, 1.0)
        self.alpha = check_float("alpha", alpha, 0.0, 1.0, exclusive_minimum=True)
        self.q = np.zeros((n_states, n_actions))

    @property
    def policy(self) -> np.ndarray:
        """The greedy policy [S] int64 (lowest action among ties)."""
        return self.q.argmax(axis=1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The tables as tensors, for checkpoints."""
        return {"q": torch.from_numpy(self.q.copy())}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restores the tables of state_dict()."""
        q = state["q"].numpy()
        if q.shape != self.q.shape:
            raise ValueError(f"q table must have shape {list(self.q.shape)}, got {list(q.shape)}")
        self.q = q.astype(np.float64).copy()

    @abstractmethod
    def episode(self, env, rng: np.random.Generator, epsilon: float, seed: int):
        """Plays and learns from one episode; returns (return, length)."""


def _reset(env, seed: int) -> int:
    state, _ = env.reset(seed=seed)
    return int(state)


class Sarsa(TabularLearner):
    """On-policy TD control: Q(s,a) += alpha [r + gamma Q(s',a') - Q(s,a)], a' drawn from the
    same epsilon-greedy policy that acts."""

    name = "sarsa"

    def episode(self, env, rng, epsilon, seed):
        state = _reset(env, seed)
        action = epsilon_greedy(self.q[state], epsilon, rng)
        total, length = 0.0, 0
        while length < MAX_EPISODE_STEPS:
            next_state, reward, terminated, truncated, _ = env.step(action)
            total, length = total + reward, length + 1
            next_action = epsilon_greedy(self.q[next_state], epsilon, rng)
            target = reward + (0.0 if terminated else self.gamma * self.q[next_state, next_action])
            self.q[state, action] += self.alpha * (target - self.q[state, action])
            if terminated or truncated:
                break
            state, action = int(next_state), next_action
        return total, length


class QLearning(TabularLearner):
    """Off-policy TD control: Q(s,a) += alpha [r + gamma max_a' Q(s',a') - Q(s,a)] while an
    epsilon-greedy policy acts."""

    name = "qlearning"

    def episode(self, env, rng, epsilon, seed):
        state = _reset(env, seed)
        total, length = 0.0, 0
        while length < MAX_EPISODE_STEPS:
            action = epsilon_greedy(self.q[state], epsilon, rng)
            next_state, reward, terminated, truncated, _ = env.step(action)
            total, length = total + reward, length + 1
            target = reward + (0.0 if terminated else self.gamma * self.q[next_state].max())
            self.q[state, action] += self.alpha * (target - self.q[state, action])
            if terminated or truncated:
                break
            state = int(next_state)
        return total, length


class MonteCarloControl(TabularLearner):
    """On-policy first-visit Monte Carlo control: after each episode, Q(s,a) moves to the
    running mean of the returns that followed the first visit of (s, a) (step 1/N, or
    `alpha` when `constant_alpha`); the acting policy is epsilon-greedy in Q."""

    name = "mc"

    def __init__(self, n_states, n_actions, gamma, alpha=1.0, constant_alpha=False) -> None:
        super().__init__(n_states, n_actions, gamma, alpha)
        self.constant_alpha = constant_alpha
        self.visits = np.zeros_like(self.q)

    def state_dict(self):
        return {**super().state_dict(), "visits": torch.from_numpy(self.visits.copy())}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.visits = state["visits"].numpy().astype(np.float64).copy()

    def episode(self, env, rng, epsilon, seed):
        state = _reset(env, seed)
        states, actions, rewards = [], [], []
        while len(rewards) < MAX_EPISODE_STEPS:
            action = epsilon_greedy(self.q[state], epsilon, rng)
            next_state, reward, terminated, truncated, _ = env.step(action)
            states.append(state)
            actions.append(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
            state = int(next_state)
        first = {}
        for t, pair in enumerate(zip(states, actions)):
            first.setdefault(pair, t)
        g = 0.0
        for t in range(len(rewards) - 1, -1, -1):
            g = rewards[t] + self.gamma * g
            pair = (states[t], actions[t])
            if first[pair] == t:
                self.visits[pair] += 1
                step = self.alpha if self.constant_alpha else 1.0 / self.visits[pair]
                self.q[pair] += step * (g - self.q[pair])
        return float(sum(rewards)), len(rewards)


class TD0Prediction(TabularLearner):
    """TD(0) prediction of the values V [S] of a fixed stochastic policy [S, A]:
    V(s) += alpha [r + gamma V(s') - V(s)]. Its `q` table holds the policy's probabilities
    (what it acts with); `values` is what it learns."""

    name = "td"

    def __init__(self, n_states, n_actions, gamma, alpha, policy: np.ndarray | None = None):
        super().__init__(n_states, n_actions, gamma, alpha)
        if policy is None:
            policy = np.full((n_states, n_actions), 1.0 / n_actions)
        policy = np.asarray(policy, dtype=np.float64)
        if policy.shape != (n_states, n_actions) or not np.allclose(policy.sum(axis=1), 1.0):
            raise ValueError(
                f"policy must be probabilities of shape [{n_states}, {n_actions}] whose rows "
                f"sum to 1, got shape {list(policy.shape)}"
            )
        self.q = policy
        self.values = np.zeros(n_states)

    @property
    def policy(self) -> np.ndarray:
        """The most probable action of the evaluated policy [S]."""
        return self.q.argmax(axis=1)

    def state_dict(self):
        return {**super().state_dict(), "values": torch.from_numpy(self.values.copy())}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.values = state["values"].numpy().astype(np.float64).copy()

    def episode(self, env, rng, epsilon, seed):
        state = _reset(env, seed)
        n_actions = self.q.shape[1]
        total, length = 0.0, 0
        while length < MAX_EPISODE_STEPS:
            action = int(rng.choice(n_actions, p=self.q[state]))
            next_state, reward, terminated, truncated, _ = env.step(action)
            total, length = total + reward, length + 1
            target = reward + (0.0 if terminated else self.gamma * self.values[next_state])
            self.values[state] += self.alpha * (target - self.values[state])
            if terminated or truncated:
                break
            state = int(next_state)
        return total, length


LEARNERS = {cls.name: cls for cls in (MonteCarloControl, TD0Prediction, Sarsa, QLearning)}


def greedy_path(env, policy: np.ndarray, seed: int = 0, max_steps: int = 1000) -> list[int]:
    """The states visited [start, ..., last] when `policy` [S] acts greedily from a reset
    with `seed` (at most max_steps steps; in a deterministic env, the policy's path)."""
    state = _reset(env, seed)
    path = [state]
    for _ in range(max_steps):
        state, _, terminated, truncated, _ = env.step(int(policy[state]))
        path.append(int(state))
        if terminated or truncated:
            break
    return path
