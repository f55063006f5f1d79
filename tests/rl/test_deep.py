"""The deep agents' parts: replay buffer, epsilon schedule, the Gaussian policy's closed-form
log-probability, return targets, and a few updates of DQN, REINFORCE and A2C lowering their
losses on a fixed batch; then a few real training steps of each."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from mp3d.rl import make_config, make_trainer
from mp3d.rl.losses import (
    discounted_returns,
    dqn_loss,
    n_step_returns,
    policy_gradient_losses,
)
from mp3d.rl.networks import CategoricalPolicy, GaussianPolicy, QNetwork, ValueNetwork
from mp3d.rl.replay import LinearSchedule, ReplayBuffer

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- parts


def test_replay_buffer_wraps_and_samples():
    buffer = ReplayBuffer(capacity=5, obs_dim=2)
    for i in range(7):  # two more than fit: 0 and 1 are overwritten
        buffer.add([[i, -i]], [i % 3], [float(i)], [[i + 1, 0]], [i == 6])
    assert len(buffer) == 5 and buffer.position == 2
    assert sorted(buffer.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    batch = buffer.sample(64, torch.Generator().manual_seed(0))
    assert batch["observations"].shape == (64, 2) and batch["actions"].dtype == torch.int64
    # Every sampled transition is one that was stored, fields kept together.
    assert torch.equal(batch["observations"][:, 0], batch["rewards"])
    assert torch.equal(batch["next_observations"][:, 0], batch["rewards"] + 1)
    assert torch.equal(batch["terminated"], (batch["rewards"] == 6).float())
    restored = ReplayBuffer(capacity=5, obs_dim=2)
    restored.load_state_dict(buffer.state_dict())
    assert torch.equal(restored.observations, buffer.observations) and restored.position == 2
    with pytest.raises(ValueError, match="empty replay buffer"):
        ReplayBuffer(3, 1).sample(2)
    with pytest.raises(ValueError, match="capacity must be an int >= 1, got 0"):
        ReplayBuffer(0, 1)


def test_linear_schedule():
    schedule = LinearSchedule(1.0, 0.1, fraction=0.5, total=100)
    assert schedule(0) == 1.0
    assert schedule(25) == pytest.approx(0.55)
    assert schedule(50) == pytest.approx(0.1) and schedule(1000) == pytest.approx(0.1)
    assert LinearSchedule(1.0, 0.2, 0.0, 10)(0) == 0.2
    with pytest.raises(ValueError, match="fraction must be"):
        LinearSchedule(1.0, 0.1, 1.5, 10)


def test_gaussian_log_prob_is_the_closed_form():
    torch.manual_seed(0)
    policy = GaussianPolicy(3, 2, hidden=(8,), log_std_init=-0.3)
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([-0.3, 0.4]))
    observations = torch.randn(5, 3)
    actions = torch.randn(5, 2)
    mean = policy.mode(observations)
    sigma = torch.tensor([-0.3, 0.4]).exp()
    expected = (
        -((actions - mean) ** 2) / (2 * sigma**2) - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    ).sum(dim=1)
    assert torch.allclose(policy.log_prob(observations, actions), expected, atol=1e-6)
    reference = torch.distributions.Normal(mean, sigma).log_prob(actions).sum(dim=1)
    assert torch.allclose(policy.log_prob(observations, actions), reference, atol=1e-6)
    entropy = torch.distributions.Normal(mean, sigma).entropy().sum(dim=1)
    assert torch.allclose(policy.entropy(observations), entropy, atol=1e-6)
    samples = policy.sample(observations.repeat(4000, 1), torch.Generator().manual_seed(1))
    noise = samples - mean.repeat(4000, 1)
    assert torch.allclose(noise.std(dim=0), sigma, rtol=0.05)
    assert torch.allclose(noise.mean(dim=0), torch.zeros(2), atol=0.05)


def test_categorical_policy_log_prob():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 3, hidden=(8,))
    observations, actions = torch.randn(6, 4), torch.tensor([0, 1, 2, 2, 1, 0])
    expected = policy.distribution(observations).log_prob(actions)
    assert torch.allclose(policy.log_prob(observations, actions), expected, atol=1e-6)


def test_discounted_returns():
    returns = discounted_returns(torch.tensor([1.0, 0.0, 2.0]), gamma=0.5)
    assert torch.allclose(returns, torch.tensor([1.5, 1.0, 2.0]))


def test_n_step_returns_stop_at_ends_and_bootstrap_through_time_limits():
    gamma = 0.9
    rewards = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    # env 0 terminates after step 0; env 1 is cut by a time limit after step 1 (V = 5 there).
    dones = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    truncation_values = torch.tensor([[0.0, 0.0], [0.0, 5.0], [0.0, 0.0]])
    last = torch.tensor([10.0, 20.0])
    returns = n_step_returns(rewards, dones, truncation_values, last, gamma)
    env0 = [1.0, 1 + gamma * (1 + gamma * 10), 1 + gamma * 10]
    env1 = [1 + gamma * (1 + gamma * 5), 1 + gamma * 5, 1 + gamma * 20]
    assert torch.allclose(returns, torch.tensor([env0, env1]).T)


# ----------------------------------------------------------------------------- updates


def _steps(loss_fn, parameters, n: int = 30, lr: float = 1e-2) -> tuple[float, float]:
    optimizer = torch.optim.Adam(parameters, lr=lr)
    first = float(loss_fn().detach())
    for _ in range(n):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()
    return first, float(loss_fn().detach())


def test_dqn_updates_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    q_net = QNetwork(4, 2, hidden=(32, 32))
    target = copy.deepcopy(q_net).requires_grad_(False)
    batch = {
        "observations": torch.randn(64, 4),
        "actions": torch.randint(2, (64,)),
        "rewards": torch.randn(64),
        "next_observations": torch.randn(64, 4),
        "terminated": (torch.rand(64) < 0.2).float(),
    }
    first, last = _steps(lambda: dqn_loss(q_net, target, batch, 0.99), q_net.parameters())
    assert last < 0.5 * first


@pytest.mark.parametrize("discrete", [True, False])
def test_policy_gradient_updates_lower_the_losses_on_a_fixed_batch(discrete):
    torch.manual_seed(0)
    if discrete:
        policy = CategoricalPolicy(3, 2, hidden=(16,))
        actions = torch.randint(2, (128,))
    else:
        policy = GaussianPolicy(3, 1, hidden=(16,))
        actions = torch.randn(128, 1)
    value_net = ValueNetwork(3, hidden=(16,))
    observations, returns = torch.randn(128, 3), torch.randn(128) + 2.0

    def terms():
        return policy_gradient_losses(policy, value_net, observations, actions, returns)

    start = terms()
    fixed_advantage = (returns - value_net(observations)).detach()

    def surrogate():  # the policy term with the advantages held at their first values
        return -(policy.log_prob(observations, actions) * fixed_advantage).mean()

    first, last = _steps(surrogate, policy.parameters())
    assert last < first
    first, last = _steps(lambda: terms()["value"], value_net.parameters())
    assert first == pytest.approx(float(start["value"].detach())) and last < 0.5 * first


# ----------------------------------------------------------------------------- trainers


@pytest.mark.parametrize(
    ("algorithm", "env", "fields"),
    [
        ("dqn", "CartPole-v1", {"learning_starts": 20, "train_freq": 4, "gradient_steps": 2}),
        ("reinforce", "CartPole-v1", {"batch_episodes": 2}),
        ("a2c", "CartPole-v1", {"n_envs": 2, "n_steps": 4}),
        ("a2c", "Pendulum-v1", {"n_envs": 2, "n_steps": 4}),
        ("reinforce", "Pendulum-v1", {"batch_episodes": 1}),
    ],
)
def test_trainers_take_steps(algorithm, env, fields):
    config = make_config(algorithm, env=env, steps=40, eval_episodes=0, hidden=(16,), **fields)
    trainer = make_trainer(config, "cpu")
    scalars = {}
    for _ in range(40 if algorithm == "dqn" else 3):
        scalars = trainer.step(0.0)
    assert trainer.env_steps > 0
    assert all(np.isfinite(v) for k, v in scalars.items() if k != "loss" or algorithm != "dqn")
    actions = trainer.agent().act(trainer.envs.observations, np.random.default_rng(0))
    space = trainer.envs.action_space
    assert all(space.contains(a if not np.ndim(a) else a.astype(np.float32)) for a in actions)
    trainer.close()
