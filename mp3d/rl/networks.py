"""The networks of the deep agents: action values, a categorical policy for Discrete actions,
a diagonal Gaussian policy for Box actions, and a state-value baseline. Observations are
float32 [B, obs_dim]."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from mp3d.nn import MLP


class QNetwork(nn.Module):
    """Q(s, .): [B, obs_dim] -> [B, n_actions] through a ReLU MLP."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (256, 256)):
        super().__init__()
        self.net = MLP(obs_dim, hidden, n_actions)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations)


class ValueNetwork(nn.Module):
    """V(s): [B, obs_dim] -> [B] through a tanh MLP."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.net = MLP(obs_dim, hidden, 1, activation=nn.Tanh)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations)[..., 0]


class CategoricalPolicy(nn.Module):
    """pi(a | s) over n_actions: logits from a tanh MLP [B, obs_dim] -> [B, n_actions]."""

    discrete = True

    def __init__(self, obs_dim: int, n_actions: int, hidden: Sequence[int] = (64, 64)):
        super().__init__()
        self.net = MLP(obs_dim, hidden, n_actions, activation=nn.Tanh)

    def distribution(self, observations: torch.Tensor) -> torch.distributions.Categorical:
        """The action distribution for observations [B, obs_dim]."""
        return torch.distributions.Categorical(logits=self.net(observations))

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a | s) [B] for actions [B] int64."""
        logits = torch.log_softmax(self.net(observations), dim=-1)
        return logits.gather(-1, actions.long()[..., None])[..., 0]

    def entropy(self, observations: torch.Tensor) -> torch.Tensor:
        """The entropy of pi(. | s) [B] in nats."""
        return self.distribution(observations).entropy()

    def sample(self, observations: torch.Tensor, generator: torch.Generator | None = None):
        """Actions [B] int64 drawn from pi(. | s)."""
        probabilities = torch.softmax(self.net(observations), dim=-1)
        return torch.multinomial(probabilities, 1, generator=generator)[:, 0]

    def mode(self, observations: torch.Tensor) -> torch.Tensor:
        """The most probable actions [B] int64 (what evaluation plays)."""
        return self.net(observations).argmax(dim=-1)


class GaussianPolicy(nn.Module):
    """pi(a | s) = N(mu(s), diag(sigma^2)) over action_dim dimensions: the mean from a tanh MLP,
    log sigma a state-independent parameter. Samples are unbounded; the caller clips them to
    the action space when stepping the environment (log-probabilities are of the sample)."""

    discrete = False

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (64, 64),
        log_std_init: float = 0.0,
    ):
        super().__init__()
        self.net = MLP(obs_dim, hidden, action_dim, activation=nn.Tanh)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(log_std_init)))

    def distribution(self, observations: torch.Tensor) -> torch.distributions.Normal:
        """Independent normals [B, action_dim] for observations [B, obs_dim]."""
        return torch.distributions.Normal(self.net(observations), self.log_std.exp())

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """log pi(a | s) [B] for actions [B, action_dim]: the closed form
        -sum_i [(a_i - mu_i)^2 / (2 sigma_i^2) + log sigma_i + log(2 pi) / 2]."""
        mean = self.net(observations)
        z = (actions - mean) * torch.exp(-self.log_std)
        return -(0.5 * z.square() + self.log_std + 0.5 * math.log(2 * math.pi)).sum(dim=-1)

    def entropy(self, observations: torch.Tensor) -> torch.Tensor:
        """The entropy [B] in nats (the same for every state)."""
        per_dim = self.log_std + 0.5 * math.log(2 * math.pi * math.e)
        return per_dim.sum().expand(observations.shape[0])

    def sample(self, observations: torch.Tensor, generator: torch.Generator | None = None):
        """Actions [B, action_dim] drawn from pi(. | s)."""
        mean = self.net(observations)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * self.log_std.exp()

    def mode(self, observations: torch.Tensor) -> torch.Tensor:
        """The mean actions [B, action_dim] (what evaluation plays)."""
        return self.net(observations)


def make_policy(env, hidden: Sequence[int] = (64, 64), log_std_init: float = 0.0) -> nn.Module:
    """A CategoricalPolicy for a Discrete action space, a GaussianPolicy for a Box one."""
    from mp3d.rl.envs import is_discrete

    obs_dim = int(env.observation_space.shape[0])
    if is_discrete(env.action_space):
        return CategoricalPolicy(obs_dim, int(env.action_space.n), hidden)
    return GaussianPolicy(obs_dim, int(env.action_space.shape[0]), hidden, log_std_init)
