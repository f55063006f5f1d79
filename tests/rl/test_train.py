"""train_rl through the shared training layer: checkpoints that load back as the same agent
(and refuse pickled objects), resuming, outputs, evaluation seeded apart from training, and
clear errors for bad configs and environments."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from mp3d.io import write_checkpoint
from mp3d.rl import (
    evaluate,
    load_agent,
    make_config,
    make_env,
    resolve_env_id,
    tabular_model,
    train_rl,
)
from mp3d.rl.train import FORMAT, VERSION, reachable

pytestmark = pytest.mark.usefixtures("one_thread")


def test_value_iteration_run_writes_its_outputs(tmp_path):
    config = make_config("vi", env="FrozenLake", eval_episodes=20)
    agent = train_rl(config, tmp_path, progress=False)
    assert agent.train_stats["converged"] and agent.train_stats["steps"] < 1000
    assert agent.exact["bellman_residual"] < 1e-8 and agent.exact["policy_optimal"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["env"] == "FrozenLake-v1" and metrics["evaluation"]["episodes"] == 20
    assert len(metrics["evaluation_returns"]) == 20
    loaded = load_agent(tmp_path)
    assert np.array_equal(loaded.table, agent.table)


def test_tabular_run_logs_every_episode_and_resumes(tmp_path):
    config = make_config("qlearning", env="CliffWalking", steps=20, eval_episodes=0)
    first = train_rl(config, tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "returns.csv").open()))
    assert len(rows) == 20 and int(rows[-1]["env_steps"]) == first.train_stats["env_steps"]
    longer = make_config("qlearning", env="CliffWalking", steps=30, eval_episodes=0)
    assert first.train_stats["steps"] == 20
    resumed = train_rl(longer, tmp_path, progress=False)
    assert resumed.train_stats["start_step"] == 20 and resumed.train_stats["steps"] == 30
    # Per-episode seeds make the resumed run equal to an uninterrupted one.
    straight = train_rl(longer, None, progress=False)
    assert np.array_equal(resumed.trainer.learner.q, straight.trainer.learner.q)
    assert resumed.trainer.returns == straight.trainer.returns


@pytest.mark.parametrize(
    ("algorithm", "fields"),
    [
        ("dqn", {"learning_starts": 10, "train_freq": 5, "gradient_steps": 1}),
        ("a2c", {"n_envs": 2, "n_steps": 5}),
        ("reinforce", {"batch_episodes": 1}),
    ],
)
def test_deep_checkpoint_round_trip_and_resume(tmp_path, algorithm, fields):
    steps = 30 if algorithm == "dqn" else 3
    config = make_config(
        algorithm, env="CartPole", steps=steps, eval_episodes=3, hidden=(16,), **fields
    )
    agent = train_rl(config, tmp_path, progress=False)
    loaded = load_agent(tmp_path / "checkpoint.pt")
    observations = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    rng = np.random.default_rng(0)
    assert np.array_equal(agent.act(observations, rng), loaded.act(observations, rng))
    assert loaded.train_stats["env_steps"] == agent.train_stats["env_steps"]
    assert evaluate(loaded, 3, seed=config.seed)["returns"] == agent.evaluation["returns"]
    more = make_config(
        algorithm, env="CartPole", steps=steps + 2, eval_episodes=3, hidden=(16,), **fields
    )
    resumed = train_rl(more, tmp_path, progress=False)
    assert resumed.train_stats["start_step"] == steps
    assert resumed.train_stats["env_steps"] > agent.train_stats["env_steps"]


def test_td_run_compares_with_the_exact_values_where_episodes_go():
    config = make_config("td", env="CliffWalking", steps=200, eval_episodes=0)
    agent = train_rl(config, progress=False)
    policy = agent.trainer.learner.q
    assert np.allclose(policy.sum(axis=1), 1.0) and policy.max() == pytest.approx(0.85)
    reached = reachable(tabular_model(make_env("CliffWalking")), policy)
    # Never in the cliff cells, and never acting in the goal (reaching it ends the episode).
    assert not reached[37:].any() and reached[:37].all()
    # The start's value is about -75 under this policy; 200 episodes get within a few units.
    assert agent.exact["exact_start_value"] == pytest.approx(-75.44, abs=0.01)
    assert agent.exact["rms_value_error"] < 0.2 * abs(agent.exact["exact_start_value"])
    uniform = make_config("td", env="FrozenLake", td_policy="uniform", steps=5, eval_episodes=0)
    assert np.allclose(train_rl(uniform, progress=False).trainer.learner.q, 0.25)


def test_evaluation_episodes_are_seeded_apart_from_training():
    agent = train_rl(make_config("vi", env="FrozenLake", eval_episodes=0), progress=False)
    a, b = evaluate(agent, 30, seed=0), evaluate(agent, 30, seed=0)
    assert a["returns"] == b["returns"]
    assert evaluate(agent, 30, seed=1)["returns"] != a["returns"]
    assert 0.4 < a["mean_return"] <= 1.0  # the optimal FrozenLake policy succeeds ~74%


def test_checkpoint_with_a_python_object_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    write_checkpoint(path, FORMAT, VERSION, {"trainer": {"x": np.dtype("float32")}})
    with pytest.raises(ValueError, match="refused"):
        load_agent(path)
    write_checkpoint(path, "mp3d.nerf", 1, {})
    with pytest.raises(ValueError, match="not an mp3d RL agent checkpoint"):
        load_agent(path)
    with pytest.raises(FileNotFoundError):
        load_agent(tmp_path / "missing.pt")


def test_unknown_environment_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"got 'CartPol'; did you mean CartPole-v1"):
        resolve_env_id("CartPol")
    with pytest.raises(ValueError, match="env must be a registered gymnasium"):
        train_rl(make_config("dqn", env="NoSuchEnv-v9", steps=5), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("algorithm", "env", "message"),
    [
        ("dqn", "Pendulum-v1", "dqn needs a Discrete action space; env Pendulum-v1 has Box"),
        ("qlearning", "CartPole-v1", "qlearning needs a Discrete observation space"),
        ("vi", "CartPole-v1", "needs a Discrete observation space; env CartPole-v1"),
        ("a2c", "FrozenLake-v1", r"a2c needs a Box \(continuous\) observation space; env Froz"),
    ],
)
def test_algorithm_on_the_wrong_kind_of_env(tmp_path, algorithm, env, message):
    with pytest.raises(ValueError, match=message):
        train_rl(make_config(algorithm, env=env, steps=5), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_bad_config_fields_are_named():
    with pytest.raises(ValueError, match="algorithm must be one of"):
        make_config("ppo")
    with pytest.raises(ValueError, match="gamma must be a finite number >= 0 and <= 1"):
        make_config("sarsa", gamma=1.5)
    with pytest.raises(ValueError, match="n_envs must be an int in"):
        make_config("a2c", n_envs=0)
    with pytest.raises(ValueError, match="hidden must be a non-empty tuple"):
        make_config("dqn", hidden=())
    with pytest.raises(ValueError, match="td_policy must be one of"):
        make_config("td", td_policy="greedy")


def test_make_env_aliases():
    assert make_env("cliffwalking").spec.id == "CliffWalking-v1"
    assert resolve_env_id("Pendulum-v1") == "Pendulum-v1"


@pytest.mark.parametrize("algorithm", ["dqn", "a2c"])
def test_deep_training_is_deterministic_given_the_seed(algorithm):
    def run(seed: int):
        config = make_config(
            algorithm,
            env="CartPole",
            steps=40 if algorithm == "dqn" else 3,
            seed=seed,
            eval_episodes=0,
            hidden=(16,),
            **({"learning_starts": 10, "train_freq": 5} if algorithm == "dqn" else {}),
        )
        trainer = train_rl(config, progress=False).trainer
        network = trainer.q_net if algorithm == "dqn" else trainer.policy
        return [p.detach().clone() for p in network.parameters()], trainer.returns

    (weights_a, returns_a), (weights_b, returns_b) = run(1), run(1)
    assert all(torch.equal(a, b) for a, b in zip(weights_a, weights_b))
    assert returns_a == returns_b
    weights_c, _ = run(2)
    assert not all(torch.equal(a, c) for a, c in zip(weights_a, weights_c))
