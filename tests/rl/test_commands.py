"""`mp3d rl train | eval`: happy paths with tiny budgets, and bad input -> exit status 2 with
one stderr line naming the culprit, nothing written."""

from __future__ import annotations

import json

import pytest

from mp3d.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_rl_help_lists_the_algorithms(capsys):
    assert main(["rl", "train", "--help"]) == 0
    out = capsys.readouterr().out
    for algorithm in ("vi", "pi", "mc", "td", "sarsa", "qlearning", "dqn", "reinforce", "a2c"):
        assert f"{algorithm}:" in out


def test_train_vi_then_eval(tmp_path, capsys):
    out = tmp_path / "vi"
    assert main(["rl", "train", "vi", "--env", "FrozenLake", "--out", out, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "(converged)" in printed and "policy optimal" in printed
    assert (out / "checkpoint.pt").is_file() and (out / "returns.csv").is_file()
    report = tmp_path / "eval.json"
    assert main(["rl", "eval", out, "--episodes", "10", "--json", report]) == 0
    printed = capsys.readouterr().out
    assert "over 10 episodes" in printed
    assert len(json.loads(report.read_text())["returns"]) == 10


@pytest.mark.parametrize(
    "argv",
    [
        ["sarsa", "--env", "cliffwalking", "--steps", "5", "--alpha", "0.5"],
        ["qlearning", "--steps", "5", "--gamma", "1"],
        ["dqn", "--env", "CartPole-v1", "--steps", "30", "--lr", "1e-3"],
        ["a2c", "--env", "Pendulum-v1", "--steps", "2", "--seed", "3"],
        ["reinforce", "--env", "CartPole", "--steps", "1"],
    ],
)
def test_train_with_tiny_budgets(tmp_path, capsys, argv):
    out = tmp_path / "run"
    command = ["rl", "train", *argv, "--out", out, "--quiet", "--eval-episodes", "2"]
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "over 2 episodes" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["algorithm"] == argv[0] and metrics["steps"] == int(
        argv[argv.index("--steps") + 1]
    )


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["train", "dqn", "--env", "NoSuchEnv-v0"], "env must be a registered gymnasium"),
        (["train", "dqn", "--env", "Pendulum-v1"], "dqn needs a Discrete action space"),
        (["train", "vi", "--env", "CartPole-v1"], "needs a Discrete observation space"),
        (["train", "ppo"], "invalid choice: 'ppo'"),
        (["train", "sarsa", "--lr", "0.1"], "--lr: only dqn, reinforce, a2c take it"),
        (["train", "dqn", "--alpha", "0.1"], "--alpha: only vi, pi, mc, td, sarsa"),
        (["train", "dqn", "--steps", "0"], "--steps: must be an int >= 1"),
        (["train", "sarsa", "--gamma", "2"], "--gamma: must be a finite number in [0, 1]"),
        (["train", "a2c", "--eval-episodes", "-1"], "--eval-episodes: must be an int"),
    ],
)
def test_bad_train_input_exits_2(tmp_path, capsys, argv, culprit):
    out = tmp_path / "run"
    assert main(["rl", *argv, "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    # One line: the library's message, or argparse's after its usage lines.
    assert culprit in err.splitlines()[-1]
    assert err.startswith("usage") or len(err.splitlines()) == 1
    assert not out.exists()


def test_bad_eval_input_exits_2(tmp_path, capsys):
    assert main(["rl", "eval", tmp_path / "missing"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    not_a_checkpoint = tmp_path / "junk.pt"
    not_a_checkpoint.write_text("junk")
    assert main(["rl", "eval", not_a_checkpoint]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert main(["rl", "eval", not_a_checkpoint, "--episodes", "0"]) == 2
    assert "argument --episodes: must be an int in [1, 1000000], got '0'" in capsys.readouterr().err
