"""The losses and return targets of the deep agents (DQN, REINFORCE, A2C), as pure functions
of networks and batches, so tests can step them on a fixed batch."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def dqn_loss(q_net: nn.Module, target_net: nn.Module, batch: dict, gamma: float) -> torch.Tensor:
    """Huber loss between Q(s, a) and the target r + gamma (1 - terminated) max_a' Q'(s', a')
    of the frozen target network, averaged over a batch from ReplayBuffer.sample."""
    q = q_net(batch["observations"]).gather(1, batch["actions"].long()[:, None])[:, 0]
    with torch.no_grad():
        next_q = target_net(batch["next_observations"]).max(dim=1).values
        target = batch["rewards"] + gamma * (1.0 - batch["terminated"]) * next_q
    return F.smooth_l1_loss(q, target)


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = sum_k gamma^k r_{t+k} [T] of one episode's rewards [T]."""
    returns = torch.empty_like(rewards)
    g = torch.zeros((), dtype=rewards.dtype)
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        returns[t] = g
    return returns


def n_step_returns(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    truncation_values: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """The n-step return targets [T, N] of a rollout of T steps in N environments:
    R_t = r_t + gamma [(1 - done_t) R_{t+1} + truncation_value_t], with R_T = last_values [N]
    (V of the observations after the rollout). dones [T, N] marks steps that ended an
    episode (terminated or truncated); truncation_values [T, N] is V(s_{t+1}) where an
    episode was cut by a time limit (so it bootstraps) and 0 elsewhere."""
    returns = torch.empty_like(rewards)
    r = last_values
    for t in range(rewards.shape[0] - 1, -1, -1):
        r = rewards[t] + gamma * ((1.0 - dones[t]) * r + truncation_values[t])
        returns[t] = r
    return returns


def policy_gradient_losses(
    policy: nn.Module,
    value_net: nn.Module,
    observations: torch.Tensor,
    actions: torch.Tensor,
    returns: torch.Tensor,
    normalize_advantages: bool = False,
) -> dict[str, torch.Tensor]:
    """The terms of REINFORCE with a baseline and of A2C for a batch of B steps: "policy"
    = -mean(log pi(a|s) * A) with advantages A = returns - V(s) (V held fixed there),
    "value" = mean((returns - V(s))^2) / 2 for the baseline, "entropy" = mean entropy
    of pi(.|s) in nats, and "advantage" (their mean, detached)."""
    values = value_net(observations)
    advantages = (returns - values).detach()
    if normalize_advantages and advantages.numel() > 1:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    log_probs = policy.log_prob(observations, actions)
    return {
        "policy": -(log_probs * advantages).mean(),
        "value": 0.5 * (returns - values).square().mean(),
        "entropy": policy.entropy(observations).mean(),
        "advantage": advantages.mean(),
    }
