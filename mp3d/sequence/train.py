"""Training, evaluating and loading character-level language models (many-to-many) on a
text file, through the shared training layer (budget, progress, atomic checkpoints, resume).

Recurrent models (rnn, lstm, gru, vrnn) train by truncated BPTT over streams: the training
text is cut into batch_size contiguous streams read `block` characters at a time, the
hidden state carried (detached) from one window to the next and saved in the checkpoint,
so a resumed run continues where it stopped. The transformer trains on random windows
drawn from a generator fixed by (seed, step). The learning rate warms up linearly, then
decays along a cosine to lr * lr_final_factor; gradients are clipped by their global norm.

Validation loss is nats per character of the held-out last 10% of the text: the mean
cross-entropy (for the VRNN, -ELBO: a bound) over windows of `block` characters read as
streams, the recurrent state carried between windows, each transformer window standing
alone (nanoGPT's estimate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from mp3d.data.text import (
    CharCorpus,
    CharVocab,
    random_windows,
    step_generator,
    stream_window,
    windows_per_pass,
)
from mp3d.sequence.bptt import clip_grad_norm, detach_state
from mp3d.sequence.language import CharModel
from mp3d.sequence.models import SequenceSpec, build_model, sequence_spec
from mp3d.sequence.sampling import sample_text
from mp3d.training import (
    CHECKPOINT_NAME,
    TrainerConfig,
    TrainingRun,
    check_float,
    check_int,
    resolve_device,
)

__all__ = ["SequenceConfig", "evaluate_loss", "load_sequence_model", "train_sequence_model"]

FORMAT, VERSION = "mp3d.sequence", 1


@dataclass
class SequenceConfig(TrainerConfig):
    """How to train one character model (batch_size, block, lr: the model's own when None)."""

    model: str = "lstm"
    steps: int | None = 3000
    batch_size: int | None = None
    block: int | None = None
    lr: float | None = None
    lr_final_factor: float = 0.1
    warmup: int = 100  # steps of linear learning-rate warm-up
    grad_clip: float = 1.0  # max global gradient norm (0: none)
    weight_decay: float = 0.0
    eval_every: int = 250  # steps between validation estimates
    eval_chars: int = 16384  # validation characters per estimate during training
    final_eval_chars: int | None = None  # at the end (None: the whole validation text)
    sample_chars: int = 500  # characters of the sample written at the end
    checkpoint_every: int = 500
    log_every: int = 25

    def validate(self) -> None:
        super().validate()
        sequence_spec(self.model)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, 1 << 14)
        if self.block is not None:
            check_int("block", self.block, 1, 1 << 14)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, 1.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_int("warmup", self.warmup, 0)
        check_float("grad_clip", self.grad_clip, 0.0)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_int("eval_every", self.eval_every, 1)
        check_int("eval_chars", self.eval_chars, 1)
        if self.final_eval_chars is not None:
            check_int("final_eval_chars", self.final_eval_chars, 1)
        check_int("sample_chars", self.sample_chars, 0, 100_000)

    @property
    def spec(self) -> SequenceSpec:
        return sequence_spec(self.model)


def learning_rate(config: SequenceConfig, lr: float, step: int, progress: float) -> float:
    """Linear warm-up over config.warmup steps, then cosine decay to lr * lr_final_factor."""
    if step < config.warmup:
        return lr * (step + 1) / config.warmup
    final = lr * config.lr_final_factor
    return final + 0.5 * (lr - final) * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def evaluate_loss(
    model: CharModel,
    ids: torch.Tensor,
    batch_size: int,
    block: int,
    max_chars: int | None = None,
) -> float:
    """Mean loss in nats per character of ids [N] (see the module docstring), over at most
    max_chars characters (streams spread over the whole text; None: all)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    batch_size = max(1, min(batch_size, (len(ids) - 1) // block))
    passes = windows_per_pass(len(ids), batch_size, block)
    if passes < 1:
        raise ValueError(
            f"the validation text has {len(ids)} characters, fewer than one window of "
            f"block={block} + 1: use a smaller --block or a longer text"
        )
    if max_chars is not None:
        passes = max(1, min(passes, max_chars // (batch_size * block)))
    total, state = 0.0, None
    for index in range(passes):
        x, y, _ = stream_window(ids, batch_size, block, index)
        loss, state, _ = model.loss(x.to(device), y.to(device), state if model.recurrent else None)
        total += float(loss)
    model.train(was_training)
    return total / passes


def _check_fits(corpus: CharCorpus, batch_size: int, block: int, recurrent: bool) -> None:
    need = (batch_size if recurrent else 1) * block + 1
    where = f"{corpus.path}: " if corpus.path else ""
    if len(corpus.train) < need:
        streams = f"--batch-size {batch_size} streams x " if recurrent else ""
        raise ValueError(
            f"{where}the training text has {len(corpus.train)} characters; {streams}"
            f"--block {block} need at least {need}: use a smaller --block or a longer text"
        )
    if len(corpus.val) < block + 1:
        raise ValueError(
            f"{where}the validation text (the last 10%) has {len(corpus.val)} characters; "
            f"--block {block} needs at least {block + 1}: use a smaller --block or a longer text"
        )


def train_sequence_model(
    corpus: CharCorpus,
    config: SequenceConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
    options: dict | None = None,
) -> CharModel:
    """Trains config.model on corpus.train; returns it in eval mode with .train_stats,
    .val_loss (nats/char), .history ([step, val loss] pairs), .vocab and, with out_dir,
    writes there the checkpoint (resumed from), metrics.json and sample.txt."""
    config = config if config is not None else SequenceConfig()
    if not isinstance(config, SequenceConfig):
        raise ValueError(f"config must be a SequenceConfig, got {type(config).__name__}")
    spec = config.spec
    batch_size = config.batch_size or spec.batch_size
    block = config.block or spec.block
    lr = config.lr or spec.lr
    options = {**spec.options, **(options or {})}
    if "block" in options:  # the transformer's positions cover the training window
        options["block"] = block
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = build_model(spec.name, corpus.vocab.size, options)
    _check_fits(corpus, batch_size, block, model.recurrent)
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta={
            "model": spec.name,
            "options": options,
            "vocab": corpus.vocab.chars,
            "train_chars": len(corpus.train),
        },
        desc=f"training {spec.name}",
        progress=progress,
        fresh=fresh,
        kind="sequence-model",
    )
    payload = run.resume()
    model.to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=config.weight_decay
    )
    state, history = None, []
    if payload is not None:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        state = _to_device(payload["hidden"], device)
        history = [list(pair) for pair in payload["history"]]

    def payload_now() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "hidden": _to_device(state, "cpu"),
            "history": history,
            "name": spec.name,
            "options": options,
            "vocab": corpus.vocab.chars,
            "batch_size": batch_size,
            "block": block,
        }

    model.train()
    while run.running():
        if model.recurrent:
            x, y, starts_pass = stream_window(corpus.train, batch_size, block, run.step)
            state = None if starts_pass else state
        else:
            generator = step_generator(config.seed, run.step)
            x, y = random_windows(corpus.train, batch_size, block, generator)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, lr, run.step, run.progress)
        loss, state, scalars = model.loss(x.to(device), y.to(device), state)
        if not torch.isfinite(loss):
            raise ValueError(f"{spec.name}: the loss became {float(loss)} at step {run.step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state = detach_state(state)
        norm = clip_grad_norm(model.parameters(), config.grad_clip) if config.grad_clip else 0.0
        optimizer.step()
        run.advance(loss=float(loss.detach()), grad_norm=norm, **scalars)
        if run.step % config.eval_every == 0:
            val = evaluate_loss(model, corpus.val, batch_size, block, config.eval_chars)
            history.append([run.step, val])
            if run.writer is not None:
                run.writer.add_scalar("val/loss", val, run.step)
        if run.checkpoint_due():
            run.save(payload_now())
    model.train_stats = run.finish(payload_now())
    model.eval()
    model.val_loss = evaluate_loss(model, corpus.val, batch_size, block, config.final_eval_chars)
    model.history, model.vocab = history, corpus.vocab
    if out_dir is not None:
        _write_outputs(model, Path(out_dir), config, corpus, block)
    return model


def _to_device(state, device):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.to(device)
    return tuple(part.to(device) for part in state)


def _write_outputs(
    model: CharModel, out: Path, config: SequenceConfig, corpus: CharCorpus, block: int
) -> None:
    from mp3d.io import atomic_path
    from mp3d.rendering import write_json

    sample = ""
    if config.sample_chars:
        sample = sample_text(model, corpus.vocab, None, config.sample_chars, seed=config.seed)
        with atomic_path(out / "sample.txt") as tmp:
            tmp.write_text(sample, encoding="utf-8")
    write_json(
        out / "metrics.json",
        {
            "model": config.model,
            "val_loss_nats_per_char": model.val_loss,
            "val_chars": len(corpus.val),
            "block": block,
            "history": model.history,
            "parameters": sum(p.numel() for p in model.parameters()),
            **model.train_stats,
        },
    )


def load_sequence_model(path: str | Path, device=None) -> CharModel:
    """The model in a train_sequence_model checkpoint (the file, or its run folder), in eval
    mode, with .vocab, .block and .train_stats; errors name the file."""
    from mp3d.io import read_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    payload = read_checkpoint(path, FORMAT, VERSION, "sequence-model")
    try:
        vocab = CharVocab(payload["vocab"])
        model = build_model(payload["name"], vocab.size, dict(payload["options"]))
        model.load_state_dict(payload["model"])
        block = int(payload["block"])
        batch_size = int(payload["batch_size"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a usable sequence-model checkpoint ({error})") from error
    model.vocab, model.block_size, model.batch_size = vocab, block, batch_size
    model.name = payload["name"]
    model.train_stats = {"steps": int(payload["step"]), "seconds": float(payload["elapsed"])}
    return model.to(resolve_device(device)).eval()
