"""Sequence classification (many-to-one): sequential MNIST, each 28x28 digit read as 28 time
steps of one 28-pixel row (Le et al. 2015 read pixel by pixel; row by row is the common
shorter variant), the last step's hidden state classified into 10 digits.

Training goes through the shared layer (budget, progress, atomic checkpoints, resume) over
epochs of mp3d.data.mnist.training_batches in the grey view (pixel / 255), ordered by
(seed, epoch) so a resumed run sees the same batches; evaluation is the accuracy and mean
cross-entropy (nats) on the evaluation images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mp3d.data.mnist import MNIST, training_batches
from mp3d.sequence.bptt import clip_grad_norm
from mp3d.sequence.recurrent import make_recurrent
from mp3d.training import (
    CHECKPOINT_NAME,
    TrainerConfig,
    TrainingRun,
    check_choice,
    check_float,
    check_int,
    resolve_device,
)

__all__ = [
    "ClassifierConfig",
    "SequenceClassifier",
    "evaluate_classifier",
    "load_classifier",
    "train_sequence_classifier",
]

FORMAT, VERSION = "mp3d.sequence.classifier", 1
CLASSIFIER_KINDS = ("rnn", "leaky", "lstm", "gru")


class SequenceClassifier(nn.Module):
    """Images [B,H,W] or [B,1,H,W] in [0,1] -> class logits [B,classes]: rows as the H
    time steps of a recurrent layer, a linear read-out of its last output."""

    def __init__(
        self,
        kind: str = "lstm",
        input_size: int = 28,
        hidden: int = 128,
        layers: int = 1,
        classes: int = 10,
        impl: str = "torch",
    ):
        super().__init__()
        check_choice("kind", kind, CLASSIFIER_KINDS)
        check_int("classes", classes, 2)
        self.kind, self.input_size = kind, input_size
        self.rnn = make_recurrent(kind, input_size, hidden, layers, impl=impl)
        self.head = nn.Linear(hidden, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images[:, 0] if images.dim() == 4 and images.shape[1] == 1 else images
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"images must be [B,H,{self.input_size}] or [B,1,H,{self.input_size}], got "
                f"shape {tuple(images.shape)}"
            )
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


@dataclass
class ClassifierConfig(TrainerConfig):
    """How to train a sequential-MNIST classifier."""

    model: str = "lstm"
    hidden: int = 128
    layers: int = 1
    steps: int | None = 2000
    batch_size: int = 64
    lr: float = 2e-3
    grad_clip: float = 1.0
    checkpoint_every: int = 500

    def validate(self) -> None:
        super().validate()
        check_choice("model", self.model, CLASSIFIER_KINDS)
        check_int("hidden", self.hidden, 1, 1 << 14)
        check_int("layers", self.layers, 1, 64)
        check_int("batch_size", self.batch_size, 1, 1 << 16)
        check_float("lr", self.lr, 0.0, 1.0, exclusive_minimum=True)
        check_float("grad_clip", self.grad_clip, 0.0)


@torch.no_grad()
def evaluate_classifier(
    model: SequenceClassifier, images, labels, batch_size: int = 500
) -> dict[str, float]:
    """Accuracy (fraction correct) and mean cross-entropy (nats) on images uint8 [N,H,W]."""
    model.eval()
    device = next(model.parameters()).device
    pixels = torch.as_tensor(images).float() / 255.0
    targets = torch.as_tensor(labels).long()
    correct, nll = 0, 0.0
    for start in range(0, len(pixels), batch_size):
        logits = model(pixels[start : start + batch_size].to(device))
        target = targets[start : start + batch_size].to(device)
        correct += int((logits.argmax(-1) == target).sum())
        nll += float(F.cross_entropy(logits, target, reduction="sum"))
    count = max(len(pixels), 1)
    return {"accuracy": correct / count, "nll": nll / count, "images": len(pixels)}


def train_sequence_classifier(
    data: MNIST,
    config: ClassifierConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
) -> SequenceClassifier:
    """Trains a row-by-row classifier on data's training digits; returns it in eval mode
    with .train_stats and .test_scores (evaluate_classifier on the evaluation digits) and,
    with out_dir, writes there the checkpoint (resumed from) and metrics.json."""
    config = config if config is not None else ClassifierConfig()
    if not isinstance(config, ClassifierConfig):
        raise ValueError(f"config must be a ClassifierConfig, got {type(config).__name__}")
    images, labels = data.train_images, data.train_labels
    if len(images) < config.batch_size:
        raise ValueError(f"--batch-size {config.batch_size} is more than the {len(images)} images")
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    options = {
        "kind": config.model,
        "input_size": int(images.shape[2]),
        "hidden": config.hidden,
        "layers": config.layers,
    }
    model = SequenceClassifier(**options)
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta={"options": options, "train_images": len(images)},
        desc=f"training sequential-MNIST {config.model}",
        progress=progress,
        fresh=fresh,
        kind="sequence-classifier",
    )
    payload = run.resume()
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    if payload is not None:
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])

    def payload_now() -> dict:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "options": options,
        }

    per_epoch = len(images) // config.batch_size
    model.train()
    while run.running():
        epoch, offset = divmod(run.step, per_epoch)
        batches = training_batches(
            images, config.batch_size, "grey", epoch=epoch, seed=config.seed, labels=labels
        )
        for index, (batch, target) in enumerate(batches):
            if index < offset:
                continue  # this epoch's batches before a resume
            if not run.running():
                break
            for group in optimizer.param_groups:
                group["lr"] = config.lr * 0.1**run.progress
            logits = model(batch.to(device))
            loss = F.cross_entropy(logits, target.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip:
                clip_grad_norm(model.parameters(), config.grad_clip)
            optimizer.step()
            accuracy = (logits.argmax(-1) == target.to(device)).float().mean()
            run.advance(loss=float(loss.detach()), accuracy=float(accuracy))
            if run.checkpoint_due():
                run.save(payload_now())
    model.train_stats = run.finish(payload_now())
    model.test_scores = evaluate_classifier(model, data.test_images, data.test_labels)
    if out_dir is not None:
        from mp3d.rendering import write_json

        write_json(
            Path(out_dir) / "metrics.json",
            {"model": config.model, **model.test_scores, **model.train_stats},
        )
    return model.eval()


def load_classifier(path: str | Path, device=None) -> SequenceClassifier:
    """The classifier in a train_sequence_classifier checkpoint (file or run folder)."""
    from mp3d.io import read_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    payload = read_checkpoint(path, FORMAT, VERSION, "sequence-classifier")
    try:
        model = SequenceClassifier(**dict(payload["options"]))
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(
            f"{path}: not a usable sequence-classifier checkpoint ({error})"
        ) from error
    model.train_stats = {"steps": int(payload["step"]), "seconds": float(payload["elapsed"])}
    return model.to(resolve_device(device)).eval()
