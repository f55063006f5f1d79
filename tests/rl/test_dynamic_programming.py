"""Exact planning: value iteration reaches the Bellman optimality fixed point, policy
iteration finds the same values and policy, policy evaluation solves the linear system."""

from __future__ import annotations

import pytest
import torch

from mp3d.rl import (
    bellman_residual,
    make_env,
    policy_evaluation,
    policy_iteration,
    tabular_model,
    value_iteration,
)
from mp3d.rl.dynamic_programming import bellman_optimality
from mp3d.rl.envs import TabularModel

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", params=["FrozenLake-v1", "CliffWalking-v1"])
def model(request) -> TabularModel:
    return tabular_model(make_env(request.param))


def test_model_is_a_substochastic_transition_table(model):
    sums = model.transitions.sum(dim=2)
    assert torch.all(sums <= 1 + 1e-12) and torch.all(sums >= 0)
    assert torch.isclose(model.start.sum(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_value_iteration_is_the_bellman_fixed_point(model, gamma):
    result = value_iteration(model, gamma)
    assert result.converged
    backup = bellman_optimality(model, result.values, gamma)
    assert torch.allclose(backup, result.values, atol=1e-8, rtol=0)
    assert bellman_residual(model, result.values, gamma) < 1e-8
    # The zero values are not the fixed point, so the residual check can fail.
    assert bellman_residual(model, torch.zeros_like(result.values), gamma) > 1e-3


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_policy_iteration_equals_value_iteration(model, gamma):
    vi = value_iteration(model, gamma)
    pi = policy_iteration(model, gamma)
    assert pi.converged
    assert torch.allclose(vi.values, pi.values, atol=1e-8, rtol=0)
    assert torch.equal(vi.policy, pi.policy)
    assert pi.residual < 1e-8


def test_optimal_policy_value_matches_its_evaluation(model):
    vi = value_iteration(model, 0.99)
    assert torch.allclose(policy_evaluation(model, vi.policy, 0.99), vi.values, atol=1e-8)


def test_cliffwalking_optimal_path_is_the_edge():
    model = tabular_model(make_env("CliffWalking-v1"))
    vi = value_iteration(model, 1.0)
    assert vi.values[36] == pytest.approx(-13.0)  # up, 11 steps right, down


def test_policy_evaluation_of_a_two_state_chain():
    # State 0 -> state 1 (reward 1), state 1 ends the episode (reward 2).
    transitions = torch.zeros(2, 1, 2, dtype=torch.float64)
    transitions[0, 0, 1] = 1.0
    rewards = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
    chain = TabularModel(transitions, rewards, torch.tensor([1.0, 0.0], dtype=torch.float64))
    values = policy_evaluation(chain, torch.zeros(2, dtype=torch.int64), 0.5)
    assert torch.allclose(values, torch.tensor([2.0, 2.0], dtype=torch.float64))


def test_policy_evaluation_bad_input():
    model = tabular_model(make_env("FrozenLake-v1"))
    with pytest.raises(ValueError, match=r"policy must have shape \[16\]"):
        policy_evaluation(model, torch.zeros(3, dtype=torch.int64), 0.9)
    with pytest.raises(ValueError, match=r"policy actions must be in \[0, 3\]"):
        policy_evaluation(model, torch.full((16,), 7), 0.9)
    with pytest.raises(ValueError, match="gamma must be"):
        value_iteration(model, 1.5)
    # Action 0 (left) in the corner never ends an episode of CliffWalking: singular at gamma 1.
    cliff = tabular_model(make_env("CliffWalking-v1"))
    with pytest.raises(ValueError, match="never ends some episodes"):
        policy_evaluation(cliff, torch.zeros(48, dtype=torch.int64), 1.0)


def test_models_only_for_tabular_envs():
    with pytest.raises(ValueError, match="needs a Discrete observation space; env CartPole-v1"):
        tabular_model(make_env("CartPole-v1"))
