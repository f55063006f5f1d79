"""What every trainer shares: its config's common fields and checks, the device, the step and
wall-clock budget, the progress bar and scalar log, and checkpoints that are written
atomically, resumed from, refused when they belong to other data, and written by one rank.

A trainer keeps its own step (model, loss, optimizer) and uses a `TrainingRun` around it::

    run = TrainingRun(config, out_dir, FORMAT, VERSION, meta=meta, desc="training X")
    payload = run.resume()                # None, or the checkpoint's payload to restore from
    while run.running():
        loss = step_fn(run.progress)      # progress in [0, 1] drives learning-rate schedules
        run.advance(loss=loss)            # counts the step, updates the bar, logs scalars
        if run.checkpoint_due():
            run.save(make_payload())
    run.finish(make_payload())            # final checkpoint; run.stats() for train_stats
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mp3d import distributed

# The argument checks live in mp3d.checks; trainers and models import them from here too.
from mp3d.checks import check_choice as check_choice
from mp3d.checks import check_float as check_float
from mp3d.checks import check_int as check_int
from mp3d.io import read_checkpoint, remove_stale_temporaries, write_checkpoint

CHECKPOINT_NAME = "checkpoint.pt"
# Config fields that may change between a run and its resumption without a warning.
RESUMABLE_CHANGES = frozenset(
    {"steps", "minutes", "checkpoint_every", "log_every", "eval_episodes"}
)


# ----------------------------------------------------------------------------- checks


@dataclass
class Config:
    """Base of every mp3d config dataclass: checked on construction by `validate()`, which
    subclasses extend (calling super().validate()) and which raises ValueError naming the
    field, the expected and the given."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Checks every field; raises ValueError on the first bad one."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain values (what checkpoints store)."""
        return dataclasses.asdict(self)


@dataclass
class TrainerConfig(Config):
    """Fields every trainer's config has. `steps` and/or `minutes` bound the run (the
    progress that schedules follow is the further along of the two); `seed` seeds every
    random draw; checkpoints every `checkpoint_every` steps and at the end; progress shown
    every `log_every` steps."""

    steps: int | None = 1000
    minutes: float | None = None
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 25

    def validate(self) -> None:
        super().validate()
        if self.steps is None and self.minutes is None:
            raise ValueError("steps and minutes must not both be None: one has to bound the run")
        if self.steps is not None:
            check_int("steps", self.steps, 1)
        if self.minutes is not None:
            check_float("minutes", self.minutes, 0.0, exclusive_minimum=True)
        check_int("seed", self.seed, 0)
        check_int("checkpoint_every", self.checkpoint_every, 1)
        check_int("log_every", self.log_every, 1)


# ----------------------------------------------------------------------------- device


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device to train or render on: `device` checked to exist here, or CUDA when
    available (this rank's GPU under torchrun), else the CPU. ValueError names the problem."""
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda", distributed.local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}") from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch is a CPU build"
                if torch.version.cuda is None
                else "torch sees no CUDA device"
            )
            raise ValueError(f"device {str(device)!r} was asked for, but {why}; use --device cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} does not exist: torch sees "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return resolved


def check_out_dir(out_dir: str | Path, name: str = "--out") -> Path:
    """`out_dir` as a Path if it is a folder or can become one (nothing is created yet);
    ValueError naming `name` if it is a file or lies under one."""
    path = Path(out_dir)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                what = "is" if candidate == path else f"lies under {candidate}, which is"
                raise ValueError(f"{name} {str(path)!r} {what} a file, not a folder")
            break
    return path


# ----------------------------------------------------------------------------- budget


class Clock:
    """A run's budget: `steps` and/or `minutes` of wall time (resumed runs count the
    seconds already spent); progress in [0, 1] is the further along of the two."""

    def __init__(self, steps: int | None, minutes: float | None, elapsed: float = 0.0) -> None:
        if steps is None and minutes is None:
            raise ValueError("steps and minutes must not both be None: one has to bound the run")
        self.steps, self.minutes = steps, minutes
        self.started = time.perf_counter() - elapsed

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, including those before a resume."""
        return time.perf_counter() - self.started

    def progress(self, step: int) -> float:
        """Fraction of the budget used after `step` steps."""
        fraction = 0.0 if self.steps is None else step / self.steps
        if self.minutes is not None:
            fraction = max(fraction, self.elapsed / (60.0 * self.minutes))
        return min(fraction, 1.0)

    def done(self, step: int) -> bool:
        """Whether the budget is spent."""
        return (self.steps is not None and step >= self.steps) or self.progress(step) >= 1.0


# ----------------------------------------------------------------------------- the run


# Watchers of every TrainingRun in this process, called on the main rank only (the viewer's
# --view, mp3d.viewer.live): objects with step(run), after each step (it may block: pause),
# wants_snapshot(run) -> bool, and snapshot(run, payload), given the trainer's checkpoint
# payload (its model's current state) at the steps it wanted and at every checkpoint.
OBSERVERS: list = []


class TrainingRun:
    """The shared machinery of one training run (see the module docstring): budget, step
    count, progress bar, TensorBoard scalars (when installed), checkpoints in `out_dir`.

    Only the main process (rank 0 under torchrun) shows progress and writes files; every rank
    keeps the same step count and clock, so the ranks stop together.
    """

    def __init__(
        self,
        config: TrainerConfig,
        out_dir: str | Path | None,
        format_name: str,
        version: int,
        meta: Mapping[str, Any] | None = None,
        desc: str = "training",
        progress: bool = True,
        fresh: bool = False,
        kind: str | None = None,
    ) -> None:
        if not isinstance(config, TrainerConfig):
            raise ValueError(f"config must be a TrainerConfig, got {type(config).__name__}")
        self.config = config
        self.format_name, self.version = format_name, version
        self.kind = kind or format_name
        self.meta = dict(meta or {})
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.checkpoint = self.out_dir / CHECKPOINT_NAME if self.out_dir is not None else None
        self.main = distributed.is_main_process()
        self.fresh = fresh
        self.step = self.start_step = 0
        self.start_elapsed = 0.0
        self.saved_step: int | None = None
        self.desc, self.show_progress = desc, progress
        self.clock = Clock(config.steps, config.minutes)
        self.bar: tqdm | None = None
        self.writer = None
        self.last: dict[str, float] = {}
        self._snapshot_only = False  # the next save() is for OBSERVERS, not the checkpoint

    # -- resuming

    def resume(self) -> dict | None:
        """The checkpoint payload to resume from (None to start afresh). Removes temporaries
        left by an interrupted save; with `fresh`, deletes the old checkpoint instead; refuses
        (ValueError) a checkpoint made from other data, and warns of changed settings."""
        payload = None
        if self.checkpoint is not None:
            if self.main:
                remove_stale_temporaries(self.checkpoint)
                if self.fresh and self.checkpoint.exists():
                    self.checkpoint.unlink()
            distributed.barrier()
            if self.checkpoint.is_file():
                payload = read_checkpoint(
                    self.checkpoint, self.format_name, self.version, self.kind
                )
                self._check_same_run(payload)
        if payload is not None:
            self.step = self.start_step = self.saved_step = int(payload["step"])
            self.start_elapsed = float(payload["elapsed"])
        self.clock = Clock(self.config.steps, self.config.minutes, self.start_elapsed)
        self._open_progress()
        return payload

    def _check_same_run(self, payload: dict) -> None:
        stored = payload.get("meta") or {}
        differing = sorted(
            key
            for key in self.meta.keys() & stored.keys()
            if _plain(stored[key]) != _plain(self.meta[key])
        )
        if differing:
            details = "; ".join(
                f"{key}: {stored[key]!r} there, {self.meta[key]!r} now" for key in differing
            )
            raise ValueError(
                f"{self.checkpoint}: was trained on other data ({details}); "
                f"use another output folder, or --fresh to start over"
            )
        old = payload.get("config") or {}
        changed = sorted(
            key
            for key, value in self.config.to_dict().items()
            if key in old and key not in RESUMABLE_CHANGES and _plain(old[key]) != _plain(value)
        )
        if changed and self.main:
            warnings.warn(
                f"{self.checkpoint}: resuming a run trained with other settings ("
                + ", ".join(f"{k}={old[k]!r} -> {getattr(self.config, k)!r}" for k in changed)
                + "); pass --fresh to start over",
                RuntimeWarning,
                stacklevel=3,
            )

    def _open_progress(self) -> None:
        timed = self.config.minutes is not None
        total = round(60 * self.config.minutes) if timed else self.config.steps
        initial = min(round(self.start_elapsed), total) if timed else self.step
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="s" if timed else "step",
            desc=self.desc,
            disable=not (self.show_progress and self.main),
            dynamic_ncols=True,
        )
        if self.out_dir is not None and self.main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self.writer = None
            else:
                self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    # -- the loop

    @property
    def progress(self) -> float:
        """Fraction of the budget used so far, in [0, 1]."""
        return self.clock.progress(self.step)

    def running(self) -> bool:
        """Whether another step fits in the budget (the same answer on every rank)."""
        if self.bar is None:
            raise RuntimeError("call TrainingRun.resume() before the training loop")
        done = self.clock.done(self.step)
        if distributed.world_size() > 1 and self.config.minutes is not None:
            done = distributed.any_rank(done)  # wall clocks differ a little between ranks
        return not done

    def advance(self, **scalars: float) -> None:
        """Counts one step; every log_every steps (and the first) shows `scalars` on the bar
        and writes them to TensorBoard as train/NAME."""
        self.step += 1
        self.last = {name: float(value) for name, value in scalars.items()}
        shown = {
            name: value if isinstance(value, int) else f"{value:.4g}"
            for name, value in scalars.items()
        }
        if self.config.minutes is not None:
            self.bar.update(min(round(self.clock.elapsed), self.bar.total) - self.bar.n)
        else:
            self.bar.update(1)
        if self.step % self.config.log_every == 0 or self.step == self.start_step + 1:
            self.bar.set_postfix(step=self.step, **shown)
            if self.writer is not None:
                for name, value in self.last.items():
                    self.writer.add_scalar(f"train/{name}", value, self.step)
        if self.main:
            for observer in list(OBSERVERS):
                observer.step(self)

    def checkpoint_due(self) -> bool:
        """Whether this step is one to checkpoint at, or one an observer wants a snapshot of
        (then save() only hands the payload to OBSERVERS)."""
        if self.checkpoint is not None and self.step % self.config.checkpoint_every == 0:
            return True
        self._snapshot_only = self.main and any(o.wants_snapshot(self) for o in list(OBSERVERS))
        return self._snapshot_only

    def save(self, payload: Mapping[str, Any]) -> Path | None:
        """Writes `payload` (tensors and plain containers), with the format, version, step,
        elapsed time, config and meta added, to the checkpoint atomically (rank 0 only).
        OBSERVERS see the payload first; a save only they asked for writes nothing."""
        snapshot_only, self._snapshot_only = self._snapshot_only, False
        if self.main:
            for observer in list(OBSERVERS):
                observer.snapshot(self, payload)
        if snapshot_only or self.checkpoint is None:
            return None
        if self.main:
            write_checkpoint(
                self.checkpoint,
                self.format_name,
                self.version,
                {
                    **payload,
                    "step": self.step,
                    "elapsed": self.clock.elapsed,
                    "config": self.config.to_dict(),
                    "meta": self.meta,
                },
            )
        self.saved_step = self.step
        return self.checkpoint

    def finish(self, payload: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Closes the bar and log, writes the final checkpoint if the last step has none yet;
        returns stats()."""
        if self.bar is not None:
            self.bar.close()
        if payload is not None and self.saved_step != self.step:
            self.save(payload)
        if self.writer is not None:
            self.writer.close()
        return self.stats()

    def stats(self) -> dict[str, float]:
        """steps, start_step, seconds (total, including before a resume) and steps_per_second
        (of this session), plus the last logged scalars as last_NAME."""
        seconds = self.clock.elapsed
        rate = (self.step - self.start_step) / max(seconds - self.start_elapsed, 1e-9)
        return {
            "steps": self.step,
            "start_step": self.start_step,
            "seconds": seconds,
            "steps_per_second": rate,
            **{f"last_{k}": v for k, v in self.last.items()},
        }


def _plain(value: Any) -> Any:
    """Meta and config values compared as plain Python (tensors and tuples as lists)."""
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 9)
    return value
