"""Trained agents as evaluation sees them: something that maps a batch of observations to
actions. Tabular agents look their actions up in a table, DQN plays argmax Q, policy-gradient
agents play their policy's mode (the mean of a Gaussian, clipped to the action bounds)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
from torch import nn


class Agent(ABC):
    """An agent for env `env_id` trained by `algorithm`."""

    def __init__(self, algorithm: str, env_id: str) -> None:
        self.algorithm, self.env_id = algorithm, env_id

    @abstractmethod
    def act(self, observations: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions [N] (or [N, action_dim]) for observations [N, ...]; `rng` for agents
        whose evaluated policy is stochastic."""


class TableAgent(Agent):
    """Acts from a table: probabilities [S, A] (sampled) or a deterministic policy [S]."""

    def __init__(self, algorithm: str, env_id: str, table: np.ndarray) -> None:
        super().__init__(algorithm, env_id)
        self.table = np.asarray(table)

    def act(self, observations, rng):
        states = np.asarray(observations, dtype=np.int64).reshape(-1)
        if self.table.ndim == 1:
            return self.table[states].astype(np.int64)
        cumulative = self.table[states].cumsum(axis=1)
        draws = rng.random((len(states), 1))
        return np.minimum((draws > cumulative).sum(axis=1), self.table.shape[1] - 1)


class QAgent(Agent):
    """Plays argmax_a Q(s, a) of a Q-network."""

    def __init__(self, algorithm: str, env_id: str, q_net: nn.Module) -> None:
        super().__init__(algorithm, env_id)
        self.q_net = q_net

    @torch.no_grad()
    def act(self, observations, rng):
        device = next(self.q_net.parameters()).device
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=device)
        return self.q_net(x).argmax(dim=1).cpu().numpy()


class PolicyAgent(Agent):
    """Plays the mode of a CategoricalPolicy or GaussianPolicy (clipped to [low, high])."""

    def __init__(self, algorithm: str, env_id: str, policy: nn.Module, low=None, high=None):
        super().__init__(algorithm, env_id)
        self.policy, self.low, self.high = policy, low, high

    @torch.no_grad()
    def act(self, observations, rng):
        device = next(self.policy.parameters()).device
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32), device=device)
        actions = self.policy.mode(x).cpu().numpy()
        if self.low is not None:
            actions = np.clip(actions, self.low, self.high)
        return actions
