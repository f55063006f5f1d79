"""Reinforcement learning on gymnasium environments, from exact planning to deep agents.

- Tabular (FrozenLake, CliffWalking, Taxi): value and policy iteration from the environment's
  exact model (``dynamic_programming``), first-visit Monte Carlo control, TD(0) prediction,
  SARSA and Q-learning (``tabular``).
- Deep (Box observations): DQN with replay, a target network, an epsilon schedule and the
  Huber loss (``dqn``); REINFORCE with a learned baseline and A2C with n-step returns in
  parallel environments, with a categorical or a Gaussian policy (``policy_gradient``).
- ``train_rl`` drives any of them through mp3d.training (budget, checkpoints, resume), then
  plays evaluation episodes seeded apart from training; ``load_agent`` and ``evaluate``
  score a checkpoint again. Configs with every hyperparameter: ``mp3d.rl.config``.

gymnasium is imported on first use (mp3d.rl.envs.gymnasium says how to install it).
"""

from mp3d.rl.agents import Agent, PolicyAgent, QAgent, TableAgent
from mp3d.rl.config import (
    ALGORITHMS,
    DEEP,
    TABULAR,
    A2CConfig,
    DQNConfig,
    ReinforceConfig,
    RLConfig,
    TabularConfig,
    config_class,
    make_config,
)
from mp3d.rl.dynamic_programming import (
    PlanningResult,
    bellman_residual,
    policy_evaluation,
    policy_iteration,
    value_iteration,
)
from mp3d.rl.envs import TabularModel, make_env, resolve_env_id, tabular_model
from mp3d.rl.evaluation import evaluate
from mp3d.rl.train import load_agent, make_trainer, train_rl

__all__ = [
    "ALGORITHMS",
    "DEEP",
    "TABULAR",
    "A2CConfig",
    "Agent",
    "DQNConfig",
    "PlanningResult",
    "PolicyAgent",
    "QAgent",
    "RLConfig",
    "ReinforceConfig",
    "TableAgent",
    "TabularConfig",
    "TabularModel",
    "bellman_residual",
    "config_class",
    "evaluate",
    "load_agent",
    "make_config",
    "make_env",
    "make_trainer",
    "policy_evaluation",
    "policy_iteration",
    "resolve_env_id",
    "tabular_model",
    "train_rl",
    "value_iteration",
]
