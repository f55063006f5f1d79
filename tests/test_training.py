"""The shared training layer: budget, device choice, output folders, the run's checkpoints."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import pytest
import torch

from mp3d.io import read_checkpoint, remove_stale_temporaries
from mp3d.training import (
    Clock,
    TrainerConfig,
    TrainingRun,
    check_float,
    check_int,
    check_out_dir,
    resolve_device,
)


def test_clock_progress_is_the_further_of_steps_and_time():
    clock = Clock(steps=10, minutes=None)
    assert clock.progress(5) == 0.5 and not clock.done(9) and clock.done(10)
    timed = Clock(steps=None, minutes=1.0, elapsed=45.0)  # resumed 45 s into a 1-minute run
    assert 0.75 <= timed.progress(0) < 0.8 and not timed.done(10**9)
    assert Clock(steps=100, minutes=1.0, elapsed=60.0).done(1)
    with pytest.raises(ValueError, match="steps and minutes must not both be None"):
        Clock(None, None)


def test_scalar_checks_name_the_argument():
    assert check_int("n", 3, 1) == 3
    for bad in (0, 2.0, True, "3"):
        with pytest.raises(ValueError, match="n must be an int >= 1"):
            check_int("n", bad, 1)
    assert check_float("x", 0.5, 0.0, 1.0) == 0.5
    for bad in (float("nan"), float("inf"), -0.1, 1.1, "0.5"):
        with pytest.raises(ValueError, match=r"x must be a finite number >= 0 and <= 1"):
            check_float("x", bad, 0.0, 1.0)


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' was asked for, but"):
            resolve_device("cuda")


def test_out_dir_must_not_be_a_file(tmp_path):
    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="--out .*file.* is a file, not a folder"):
        check_out_dir(tmp_path / "file")
    with pytest.raises(ValueError, match="lies under .*file, which is a file"):
        check_out_dir(tmp_path / "file" / "sub")


@dataclass
class _Config(TrainerConfig):
    rate: float = 0.1

    def validate(self) -> None:
        super().validate()
        check_float("rate", self.rate, 0.0, exclusive_minimum=True)


def test_configs_validate_on_construction():
    with pytest.raises(ValueError, match="rate must be a finite number > 0"):
        _Config(rate=0.0)
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        _Config(steps=0)
    with pytest.raises(ValueError, match="checkpoint_every must be an int >= 1"):
        _Config(checkpoint_every=0)


def _run(tmp_path, config, meta=None, fresh=False):
    run = TrainingRun(
        config, tmp_path, "mp3d.test", 1, meta=meta or {"data": "a"}, progress=False, fresh=fresh
    )
    return run, run.resume()


def test_run_counts_checkpoints_and_resumes(tmp_path):
    config = _Config(steps=7, checkpoint_every=3)
    run, payload = _run(tmp_path, config)
    assert payload is None
    saved = []
    while run.running():
        run.advance(loss=1.0 / (run.step + 1))
        if run.checkpoint_due():
            run.save({"weights": torch.full((2,), float(run.step))})
            saved.append(run.step)
    stats = run.finish({"weights": torch.full((2,), float(run.step))})
    assert saved == [3, 6] and stats["steps"] == 7 and stats["start_step"] == 0
    assert stats["last_loss"] == pytest.approx(1.0 / 7)
    stored = read_checkpoint(tmp_path / "checkpoint.pt", "mp3d.test", 1, "test")
    assert stored["step"] == 7 and stored["weights"].tolist() == [7.0, 7.0]
    assert stored["config"]["steps"] == 7 and stored["meta"] == {"data": "a"}

    longer, payload = _run(tmp_path, _Config(steps=9, checkpoint_every=3))
    assert payload["step"] == 7 and longer.step == 7
    while longer.running():
        longer.advance()
    assert longer.finish()["steps"] == 9


def test_run_refuses_other_data_warns_of_other_settings_and_starts_fresh(tmp_path):
    run, _ = _run(tmp_path, _Config(steps=2))
    while run.running():
        run.advance()
    run.finish({})
    with pytest.raises(ValueError, match="was trained on other data .data: 'a' there, 'b' now"):
        _run(tmp_path, _Config(steps=2), meta={"data": "b"})
    with pytest.warns(RuntimeWarning, match=r"other settings \(rate=0.1 -> 0.5\)"):
        _run(tmp_path, _Config(steps=4, rate=0.5))
    fresh, payload = _run(tmp_path, _Config(steps=2), meta={"data": "b"}, fresh=True)
    assert payload is None and fresh.step == 0 and not (tmp_path / "checkpoint.pt").exists()


def test_stale_temporaries_are_removed_but_fresh_ones_kept(tmp_path):
    target = tmp_path / "checkpoint.pt"
    stale, recent = tmp_path / ".checkpoint.pt.x1.pt", tmp_path / ".checkpoint.pt.x2.pt"
    other = tmp_path / ".other.pt.x3.pt"
    for path in (stale, recent, other):
        path.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    os.utime(other, (old, old))
    assert remove_stale_temporaries(target) == [stale]
    assert recent.exists() and other.exists()
