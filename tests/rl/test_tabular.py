"""Model-free tabular learning: the classic CliffWalking result (SARSA's safe path,
Q-learning's cliff-edge path), TD(0) prediction against the exact values of the evaluated
policy, Monte Carlo control improving its policy, and the epsilon-greedy rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mp3d.rl import make_env, policy_evaluation, tabular_model, value_iteration
from mp3d.rl.envs import episode_rng, episode_seed
from mp3d.rl.tabular import (
    MonteCarloControl,
    QLearning,
    Sarsa,
    TD0Prediction,
    epsilon_greedy,
    greedy_path,
)

pytestmark = pytest.mark.usefixtures("one_thread")

START, GOAL, COLUMNS = 36, 47, 12  # CliffWalking: 4 x 12, the cliff between them in row 3


def _learn(learner, env, episodes: int, epsilon: float, seed: int = 0):
    for episode in range(episodes):
        learner.episode(env, episode_rng(seed, episode), epsilon, episode_seed(seed, episode))
    return learner


@pytest.fixture(scope="module")
def cliff():
    return make_env("CliffWalking-v1")


def _rows(path: list[int]) -> list[int]:
    return [state // COLUMNS for state in path]


def test_sarsa_learns_the_safe_path(cliff):
    sarsa = _learn(Sarsa(48, 4, gamma=1.0, alpha=0.5), cliff, 500, epsilon=0.1)
    path = greedy_path(cliff, sarsa.policy, max_steps=100)
    assert path[0] == START and path[-1] == GOAL
    rows = _rows(path)
    # Away from the edge: only the first and last columns' cells of row 2 are used.
    assert sum(row == 2 for row in rows) <= 2
    assert len(path) - 1 > 13


def test_q_learning_learns_the_cliff_edge_path(cliff):
    q_learning = _learn(QLearning(48, 4, gamma=1.0, alpha=0.5), cliff, 500, epsilon=0.1)
    path = greedy_path(cliff, q_learning.policy, max_steps=100)
    assert path == [START, *range(24, 36), GOAL]  # up, 11 x right along row 2, down
    # Its values are the optimal ones along that path: -13 from the start.
    assert q_learning.q[START].max() == pytest.approx(-13.0, abs=0.5)


def test_learning_is_deterministic_given_the_seed(cliff):
    a = _learn(QLearning(48, 4, 1.0, 0.5), cliff, 30, 0.1, seed=3)
    b = _learn(QLearning(48, 4, 1.0, 0.5), cliff, 30, 0.1, seed=3)
    c = _learn(QLearning(48, 4, 1.0, 0.5), cliff, 30, 0.1, seed=4)
    assert np.array_equal(a.q, b.q) and not np.array_equal(a.q, c.q)


def test_td0_prediction_matches_the_exact_values():
    env = make_env("FrozenLake-v1")
    model = tabular_model(env)
    optimal = value_iteration(model, 0.99).policy.numpy()
    policy = 0.8 * np.eye(4)[optimal] + 0.2 / 4  # an epsilon-soft policy, evaluated
    exact = policy_evaluation(model, torch.from_numpy(policy), 0.99).numpy()
    td = _learn(TD0Prediction(16, 4, 0.99, alpha=0.05, policy=policy), env, 1000, 0.0)
    error = np.abs(td.values - exact)
    assert error.max() < 0.1 < np.abs(exact).max()
    assert np.sqrt(np.mean(error**2)) < 0.04


def test_monte_carlo_control_improves_its_policy():
    env = make_env("FrozenLake-v1", is_slippery=False)
    model = tabular_model(env)

    def start_value(policy: np.ndarray) -> float:
        return float(policy_evaluation(model, torch.from_numpy(policy), 0.99) @ model.start)

    mc = MonteCarloControl(16, 4, gamma=0.99)
    before = start_value(mc.policy)
    for episode in range(300):
        epsilon = max(0.1, 1.0 - episode / 150)
        mc.episode(env, episode_rng(0, episode), epsilon, episode_seed(0, episode))
    after = start_value(mc.policy)
    assert before == 0.0  # action 0 everywhere never reaches the goal
    assert after == pytest.approx(0.99**5)  # the greedy policy takes a shortest path (6 steps)


def test_epsilon_greedy_explores_and_exploits():
    rng = np.random.default_rng(0)
    q = np.array([0.0, 1.0, 0.5])
    assert all(epsilon_greedy(q, 0.0, rng) == 1 for _ in range(50))
    draws = [epsilon_greedy(q, 1.0, rng) for _ in range(300)]
    assert set(draws) == {0, 1, 2}
    ties = {epsilon_greedy(np.zeros(4), 0.0, rng) for _ in range(100)}
    assert len(ties) > 1  # untrained tables break ties at random


def test_bad_learner_arguments():
    with pytest.raises(ValueError, match="alpha must be"):
        Sarsa(4, 2, gamma=0.9, alpha=0.0)
    with pytest.raises(ValueError, match="gamma must be"):
        QLearning(4, 2, gamma=-1.0, alpha=0.5)
    with pytest.raises(ValueError, match="policy must be probabilities"):
        TD0Prediction(4, 2, 0.9, 0.1, policy=np.ones((4, 2)))
