"""The per-algorithm half of training: a Trainer owns an algorithm's state (tables or
networks, optimizer, replay) and does one step at a time; mp3d.rl.train drives any Trainer
through the shared TrainingRun (budget, progress, checkpoints). This module has the base
class and the tabular trainers (planning and episodic learning)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from mp3d.rl import dynamic_programming as dp
from mp3d.rl.agents import Agent, TableAgent
from mp3d.rl.config import RLConfig, TabularConfig
from mp3d.rl.envs import episode_rng, episode_seed, make_env, require_spaces, tabular_model
from mp3d.rl.replay import LinearSchedule
from mp3d.rl.tabular import LEARNERS


class Trainer(ABC):
    """One algorithm's training state. Counts environment steps and episodes and keeps each
    finished episode's return and length (the run's training curve)."""

    converged = False  # planners set it once their criterion holds; the loop then stops

    def __init__(self, config: RLConfig, env_id: str) -> None:
        self.config, self.env_id = config, env_id
        self.env_steps = 0
        self.episodes = 0
        self.returns: list[float] = []
        self.lengths: list[int] = []

    @abstractmethod
    def step(self, progress: float) -> dict[str, float]:
        """One training step (see mp3d.rl.config for what a step is); returns the scalars
        to log. `progress` in [0, 1] is how far through its budget the run is."""

    @abstractmethod
    def agent(self) -> Agent:
        """The agent as trained so far (sharing this trainer's tables or networks)."""

    def state_dict(self) -> dict:
        """What a checkpoint stores to resume (tensors and plain containers only)."""
        return {
            "env_steps": self.env_steps,
            "episodes": self.episodes,
            "returns": torch.tensor(self.returns, dtype=torch.float64),
            "lengths": torch.tensor(self.lengths, dtype=torch.int64),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restores state_dict()."""
        self.env_steps, self.episodes = int(state["env_steps"]), int(state["episodes"])
        self.returns = state["returns"].tolist()
        self.lengths = state["lengths"].tolist()

    def record(self, finished: list[tuple[float, int]]) -> dict[str, float]:
        """Keeps finished (return, length) pairs; the scalars for the log: the mean return
        of the last up to 100 episodes."""
        for total, length in finished:
            self.returns.append(float(total))
            self.lengths.append(int(length))
        if not self.returns:
            return {}
        return {"return": float(np.mean(self.returns[-100:]))}

    def close(self) -> None:  # noqa: B027 (a no-op for trainers without environments)
        """Releases environments."""


class PlanningTrainer(Trainer):
    """vi (a step: one Bellman optimality sweep) and pi (a step: one exact evaluation and
    greedy improvement), from the environment's exact model; converged when a sweep changes
    no value by more than config.tol, or when the policy is stable."""

    def __init__(self, config: TabularConfig, env_id: str) -> None:
        super().__init__(config, env_id)
        env = make_env(env_id)
        self.model = tabular_model(env)
        env.close()
        self.gamma = config.gamma
        self.values = torch.zeros(self.model.n_states, dtype=torch.float64)
        self.policy = torch.zeros(self.model.n_states, dtype=torch.int64)

    def step(self, progress):
        if self.config.algorithm == "vi":
            new = dp.bellman_optimality(self.model, self.values, self.gamma)
            change = float((new - self.values).abs().max())
            self.values = new
            self.converged = change <= self.config.tol
            q = dp.q_values(self.model, self.values, self.gamma)
            self.policy = dp.greedy_policy(q)
            return {"change": change}
        new_policy, stable = dp.policy_improvement(self.model, self.policy, self.gamma)
        changed = int((new_policy != self.policy).sum())
        self.policy = new_policy
        self.values = dp.policy_evaluation(self.model, self.policy, self.gamma)
        self.converged = stable
        return {"changed_states": changed}

    def residual(self) -> float:
        """The Bellman optimality residual ||T V - V||_inf of the current values."""
        return dp.bellman_residual(self.model, self.values, self.gamma)

    def agent(self):
        return TableAgent(self.config.algorithm, self.env_id, self.policy.numpy().copy())

    def state_dict(self):
        return {**super().state_dict(), "values": self.values, "policy": self.policy}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.values = state["values"].to(torch.float64)
        self.policy = state["policy"].long()


def evaluated_policy(env, config: TabularConfig) -> np.ndarray:
    """The probabilities [S, A] of the policy TD(0) evaluates (config.td_policy)."""
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)
    uniform = np.full((n_states, n_actions), 1.0 / n_actions)
    if config.td_policy == "uniform":
        return uniform
    optimal = dp.value_iteration(tabular_model(env), config.gamma).policy.numpy()
    return (1.0 - config.td_epsilon) * np.eye(n_actions)[optimal] + config.td_epsilon * uniform


class EpisodicTrainer(Trainer):
    """mc, td, sarsa, qlearning (mp3d.rl.tabular): a step is one episode, seeded by
    (config.seed, episode) for the environment and for exploration."""

    def __init__(self, config: TabularConfig, env_id: str) -> None:
        super().__init__(config, env_id)
        self.env = make_env(env_id)
        require_spaces(self.env, config.algorithm, observation="discrete", action="discrete")
        n_states, n_actions = int(self.env.observation_space.n), int(self.env.action_space.n)
        learner_class = LEARNERS[config.algorithm]
        if config.algorithm == "mc":
            self.learner = learner_class(
                n_states, n_actions, config.gamma, config.alpha, config.constant_alpha
            )
        elif config.algorithm == "td":
            policy = evaluated_policy(self.env, config)
            self.learner = learner_class(n_states, n_actions, config.gamma, config.alpha, policy)
        else:
            self.learner = learner_class(n_states, n_actions, config.gamma, config.alpha)
        total = config.steps or 1
        self.epsilon = LinearSchedule(
            config.epsilon_start, config.epsilon_end, config.epsilon_fraction, total
        )

    def step(self, progress):
        if self.config.steps is None:  # a run bounded by minutes only: follow the clock
            epsilon = self.epsilon(round(progress * self.epsilon.total))
        else:
            epsilon = self.epsilon(self.episodes)
        seed = episode_seed(self.config.seed, self.episodes)
        total, length = self.learner.episode(
            self.env, episode_rng(self.config.seed, self.episodes), epsilon, seed
        )
        self.episodes += 1
        self.env_steps += length
        return {**self.record([(total, length)]), "epsilon": epsilon}

    def agent(self):
        if self.config.algorithm == "td":  # it evaluates a fixed stochastic policy
            return TableAgent("td", self.env_id, self.learner.q.copy())
        return TableAgent(self.config.algorithm, self.env_id, self.learner.policy.copy())

    def state_dict(self):
        return {**super().state_dict(), "tables": self.learner.state_dict()}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.learner.load_state_dict(state["tables"])

    def close(self):
        self.env.close()
