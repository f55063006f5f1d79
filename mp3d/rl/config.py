"""The configs of every mp3d.rl algorithm, every hyperparameter visible with its default.

What one training *step* is differs by algorithm (it is what `steps` counts and what the
run's checkpoints and progress bar count):

- vi: one value-iteration sweep; pi: one policy-improvement round (both stop early once
  converged);
- mc, td, sarsa, qlearning: one episode;
- dqn: one environment step;
- reinforce: one update from `batch_episodes` episodes;
- a2c: one update from a rollout of `n_steps` steps in each of `n_envs` environments.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mp3d.training import TrainerConfig, check_choice, check_float, check_int

TABULAR = ("vi", "pi", "mc", "td", "sarsa", "qlearning")
TD_POLICIES = ("soft-optimal", "uniform")
DEEP = ("dqn", "reinforce", "a2c")
ALGORITHMS = TABULAR + DEEP
SUMMARIES = {
    "vi": "value iteration (exact, from the env's model)",
    "pi": "policy iteration (exact, from the env's model)",
    "mc": "first-visit Monte Carlo control, epsilon-greedy",
    "td": "TD(0) prediction of a fixed policy (epsilon-soft optimal, or uniform)",
    "sarsa": "SARSA (on-policy TD control)",
    "qlearning": "Q-learning (off-policy TD control)",
    "dqn": "deep Q-network: replay, target network, epsilon schedule, Huber loss",
    "reinforce": "REINFORCE with a learned baseline (categorical or Gaussian policy)",
    "a2c": "advantage actor-critic with n-step returns in parallel environments",
}


def _check_hidden(hidden: tuple[int, ...]) -> None:
    if not isinstance(hidden, (tuple, list)) or not hidden:
        raise ValueError(f"hidden must be a non-empty tuple of layer widths, got {hidden!r}")
    for width in hidden:
        check_int("hidden width", width, 1, 1 << 14)


@dataclass
class RLConfig(TrainerConfig):
    """Fields every algorithm has: its name, the environment (a gymnasium id or an alias of
    mp3d.rl.envs.ALIASES), the discount, and the evaluation episodes run after training
    (seeded apart from every training episode)."""

    algorithm: str = "dqn"
    env: str = "CartPole-v1"
    gamma: float = 0.99
    eval_episodes: int = 100
    checkpoint_every: int = 1000
    log_every: int = 100

    def validate(self) -> None:
        super().validate()
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        if not isinstance(self.env, str) or not self.env:
            raise ValueError(f"env must be a gymnasium environment id, got {self.env!r}")
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_int("eval_episodes", self.eval_episodes, 0, 100_000)


# Per-algorithm defaults of the TabularConfig fields left as None: the classic CliffWalking
# experiment's constant epsilon 0.1 and alpha 0.5 for SARSA and Q-learning; for MC control
# 1/N averaging and a constant epsilon 0.3 (on FrozenLake after 10,000 episodes its greedy
# policy's start value was 0.45 of the optimal 0.54, against 0.23 with epsilon decaying from 1
# to 0.05: it explores only through its behaviour policy).
TABULAR_DEFAULTS = {
    "vi": {"steps": 100_000, "alpha": 0.5, "epsilon_start": 0.1, "epsilon_end": 0.1},
    "pi": {"steps": 1000, "alpha": 0.5, "epsilon_start": 0.1, "epsilon_end": 0.1},
    "mc": {"steps": 5000, "alpha": 0.1, "epsilon_start": 0.3, "epsilon_end": 0.3},
    "td": {"steps": 2000, "alpha": 0.05, "epsilon_start": 0.0, "epsilon_end": 0.0},
    "sarsa": {"steps": 500, "alpha": 0.5, "epsilon_start": 0.1, "epsilon_end": 0.1},
    "qlearning": {"steps": 500, "alpha": 0.5, "epsilon_start": 0.1, "epsilon_end": 0.1},
}


@dataclass
class TabularConfig(RLConfig):
    """vi, pi (`tol`: value iteration stops when a sweep changes no value by more), and the
    episodic learners: step size `alpha` (mc: 1/N averaging unless constant_alpha), and an
    epsilon-greedy policy whose epsilon moves linearly from epsilon_start to epsilon_end
    over the first epsilon_fraction of the episodes. td evaluates `td_policy`: "uniform"
    (every action alike) or "soft-optimal" (the optimal policy of the env's exact model with
    probability 1 - td_epsilon, else a uniform action; the uniform policy wanders for
    thousands of steps per CliffWalking episode). Fields left None take the algorithm's
    TABULAR_DEFAULTS (so `steps` is None only if `minutes` bounds the run)."""

    algorithm: str = "qlearning"
    env: str = "CliffWalking-v1"
    steps: int | None = None
    alpha: float | None = None
    constant_alpha: bool = False
    epsilon_start: float | None = None
    epsilon_end: float | None = None
    epsilon_fraction: float = 0.5
    tol: float = 1e-12
    td_policy: str = "soft-optimal"
    td_epsilon: float = 0.2

    def __post_init__(self) -> None:
        defaults = TABULAR_DEFAULTS.get(self.algorithm, {})
        for name, value in defaults.items():
            if getattr(self, name) is None and not (name == "steps" and self.minutes):
                setattr(self, name, value)
        super().__post_init__()

    def validate(self) -> None:
        super().validate()
        check_choice("algorithm", self.algorithm, TABULAR)
        check_float("alpha", self.alpha, 0.0, 1.0, exclusive_minimum=True)
        check_float("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_float("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_float("epsilon_fraction", self.epsilon_fraction, 0.0, 1.0)
        check_float("tol", self.tol, 0.0, 1.0, exclusive_minimum=True)
        check_choice("td_policy", self.td_policy, TD_POLICIES)
        check_float("td_epsilon", self.td_epsilon, 0.0, 1.0)


@dataclass
class DQNConfig(RLConfig):
    """DQN: after `learning_starts` random steps, every `train_freq` environment steps,
    `gradient_steps` Adam steps on `batch_size` transitions from a replay buffer of the last
    `buffer_size`; the target network is copied every `target_update` gradient steps;
    epsilon moves linearly from epsilon_start to epsilon_end over exploration_fraction of
    the run's steps. Defaults from short CartPole-v1 runs (bench/quality_rl.py's solve
    criterion, seeds 0-2, busy 2-core CPU): the target copied once per training round
    rather than every 10 gradient steps (that diverged: Q above 1/(1-gamma)); epsilon
    reaching 0.04 after 5,000 steps solved in 10k-17.5k environment steps (median 15k)
    against 20k-37.5k when it took 8,000; the zoo's 128 gradient steps per 256
    environment steps with 256-wide layers took 25k-27.5k."""

    algorithm: str = "dqn"
    steps: int | None = 50_000
    lr: float = 2.5e-3
    batch_size: int = 64
    buffer_size: int = 50_000
    learning_starts: int = 1000
    train_freq: int = 64
    gradient_steps: int = 32
    target_update: int = 32
    epsilon_start: float = 1.0
    epsilon_end: float = 0.04
    exploration_fraction: float = 0.1
    max_grad_norm: float = 10.0
    hidden: tuple[int, ...] = field(default=(128, 128))

    def validate(self) -> None:
        super().validate()
        check_choice("algorithm", self.algorithm, ("dqn",))
        check_float("lr", self.lr, 0.0, 1.0, exclusive_minimum=True)
        check_int("batch_size", self.batch_size, 1, 1 << 16)
        check_int("buffer_size", self.buffer_size, 1, 10_000_000)
        check_int("learning_starts", self.learning_starts, 0)
        check_int("train_freq", self.train_freq, 1)
        check_int("gradient_steps", self.gradient_steps, 1)
        check_int("target_update", self.target_update, 1)
        check_float("epsilon_start", self.epsilon_start, 0.0, 1.0)
        check_float("epsilon_end", self.epsilon_end, 0.0, 1.0)
        check_float("exploration_fraction", self.exploration_fraction, 0.0, 1.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0)
        _check_hidden(self.hidden)


@dataclass
class PolicyGradientConfig(RLConfig):
    """What REINFORCE and A2C share: Adam at `lr` on the policy and the value baseline
    (tanh MLPs of `hidden` widths), the value loss weighted by value_coef, an entropy bonus
    entropy_coef, gradients clipped to max_grad_norm (0: no clipping), advantages
    normalised per batch if normalize_advantages, and Gaussian policies (Box actions)
    starting at log sigma = log_std_init."""

    lr: float = 1e-3
    value_coef: float = 0.5
    entropy_coef: float = 0.0
    max_grad_norm: float = 0.5
    normalize_advantages: bool = False
    log_std_init: float = 0.0
    hidden: tuple[int, ...] = field(default=(64, 64))

    def validate(self) -> None:
        super().validate()
        check_float("lr", self.lr, 0.0, 1.0, exclusive_minimum=True)
        check_float("value_coef", self.value_coef, 0.0)
        check_float("entropy_coef", self.entropy_coef, 0.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0)
        check_float("log_std_init", self.log_std_init, -20.0, 5.0)
        _check_hidden(self.hidden)


@dataclass
class ReinforceConfig(PolicyGradientConfig):
    """REINFORCE with a learned baseline: each step updates from `batch_episodes` whole
    episodes with their discounted returns G_t."""

    algorithm: str = "reinforce"
    steps: int | None = 500
    batch_episodes: int = 4
    normalize_advantages: bool = True
    checkpoint_every: int = 100
    log_every: int = 10

    def validate(self) -> None:
        super().validate()
        check_choice("algorithm", self.algorithm, ("reinforce",))
        check_int("batch_episodes", self.batch_episodes, 1, 10_000)


@dataclass
class A2CConfig(PolicyGradientConfig):
    """A2C: each step is a rollout of n_steps in each of n_envs environments, then one
    update with n-step returns bootstrapped from the value network. Defaults from short
    CartPole-v1 runs (bench/quality_rl.py's criterion, busy 2-core CPU): advantages
    normalised per rollout (median 10k environment steps to solve against about 32k
    without, seeds 0-3), at lr 1e-3 (seeds 0-5: 7.5k-22.5k, median 13.8k; 2e-3: median
    31k; 1.5e-3: 16k; n_steps 16: 13.8k but up to 50k; 16 envs: 36k; SB3's n_steps 5 at
    7e-4: 36k)."""

    algorithm: str = "a2c"
    steps: int | None = 5000
    n_envs: int = 8
    n_steps: int = 8
    normalize_advantages: bool = True

    def validate(self) -> None:
        super().validate()
        check_choice("algorithm", self.algorithm, ("a2c",))
        check_int("n_envs", self.n_envs, 1, 1024)
        check_int("n_steps", self.n_steps, 1, 100_000)


def config_class(algorithm: str) -> type[RLConfig]:
    """The config dataclass of `algorithm` (one of ALGORITHMS)."""
    check_choice("algorithm", algorithm, ALGORITHMS)
    if algorithm in TABULAR:
        return TabularConfig
    return {"dqn": DQNConfig, "reinforce": ReinforceConfig, "a2c": A2CConfig}[algorithm]


def make_config(algorithm: str, **fields) -> RLConfig:
    """config_class(algorithm)(algorithm=algorithm, **fields)."""
    return config_class(algorithm)(algorithm=algorithm, **fields)
