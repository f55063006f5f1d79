"""Training, evaluating and sampling any registered image model on MNIST, through the
shared training layer (budget, progress, atomic checkpoints, resume).

Training runs over epochs of mp3d.data.mnist.training_batches (fresh binarisation or
dequantisation noise each epoch, fixed by the seed and the epoch, so a resumed run sees the
same batches it would have seen). Evaluation scores the test split with its fixed noise:
nats per image, and bits per dimension (of the 8-bit pixels for dequantised models, of the
binary pixels for binarised ones). Each evaluation writes a grid of samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from mp3d.data.mnist import MNIST, bits_per_dim, evaluation_batches
from mp3d.generative.base import GenerativeModel, ImageModel, ModelSpec
from mp3d.generative.registry import model_spec
from mp3d.training import TrainerConfig, TrainingRun, check_float, check_int, resolve_device

__all__ = [
    "GenerativeConfig",
    "evaluate_model",
    "evaluate_nll",
    "load_generative",
    "sample_grid",
    "train_generative",
]

FORMAT, VERSION = "mp3d.generative", 1


@dataclass
class GenerativeConfig(TrainerConfig):
    """How to train one registered model (batch size and lr: the model's own when None)."""

    model: str = "made"
    steps: int | None = 5000
    batch_size: int | None = None
    lr: float | None = None
    lr_final_factor: float = 0.1  # the lr decays exponentially to lr * this
    grad_clip: float = 100.0  # max gradient norm (0: none)
    eval_batch_size: int = 500
    samples: int = 64  # images in each evaluation's sample grid
    # Sampling steps of the end-of-training scores and grid where the sampler takes steps
    # (diffusion: DDIM on this many timesteps); None: the model's default sampler, for DDPM
    # all 1,000 ancestral steps (about 35 minutes per 1,000 samples on one core).
    eval_steps: int | None = 100
    checkpoint_every: int = 500
    log_every: int = 25

    def validate(self) -> None:
        super().validate()
        model_spec(self.model)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, 1 << 16)
        if self.lr is not None:
            check_float("lr", self.lr, 0.0, 1.0, exclusive_minimum=True)
        check_float("lr_final_factor", self.lr_final_factor, 0.0, 1.0, exclusive_minimum=True)
        check_float("grad_clip", self.grad_clip, 0.0)
        check_int("eval_batch_size", self.eval_batch_size, 1, 1 << 16)
        check_int("samples", self.samples, 1, 1024)
        if self.eval_steps is not None:
            check_int("eval_steps", self.eval_steps, 1, 100_000)

    @property
    def spec(self) -> ModelSpec:
        return model_spec(self.model)


def _build(spec: ModelSpec, options: dict) -> GenerativeModel:
    model = spec.make(**options)
    if model.view != spec.view:
        raise RuntimeError(f"{spec.name} builds a {model.view} model, registered {spec.view}")
    return model


@torch.no_grad()
def evaluate_nll(model: ImageModel, images, batch_size: int = 500, device=None) -> dict[str, float]:
    """Mean NLL of the fixed evaluation view of images uint8 [N,H,W]: nats per image and
    bits per dimension (see the module docstring), and which kind of NLL it is."""
    model.eval()
    device = device or next(iter(model.parameters()), torch.zeros(0)).device
    total, count = 0.0, 0
    for batch in evaluation_batches(images, batch_size, model.view):
        nll = model.nll(batch.to(device)).double()
        if not torch.isfinite(nll).all():
            raise ValueError(f"{type(model).__name__} gave a non-finite NLL")
        total, count = total + float(nll.sum()), count + len(nll)
    nats = total / count
    if model.view == "dequantised":
        bits = float(bits_per_dim(torch.tensor(nats), model.n_dims))
    else:
        bits = nats / (model.n_dims * math.log(2.0))
    return {"nats": nats, "bits_per_dim": bits, "nll_kind": model.nll_kind, "images": count}


@torch.no_grad()
def sample_grid(
    model: GenerativeModel,
    path: str | Path,
    n: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
    data: MNIST | None = None,
    **conditions,
) -> Path:
    """Writes n samples of the model as one PNG grid (rows of ceil(sqrt(n))); conditions
    (labels, guidance, steps) go to the model's sampler. A translation model
    (mp3d.generative.translation) instead translates n evaluation digits of `data`
    (required for it, unused by the others) and shows each source beside its translation
    and its known target."""
    from mp3d.generative.translation import TranslationModel, translation_panels
    from mp3d.io import save_image

    check_int("n", n, 1, 1024)
    check_float("temperature", temperature, 0.0, 10.0, exclusive_minimum=True)
    model.eval()
    if isinstance(model, TranslationModel):
        if data is None:
            raise ValueError(
                f"data is required: a {type(model).__name__} grid translates evaluation "
                f"digits (mp3d gen sample --data DIR)"
            )
        if conditions:
            given = ", ".join(conditions)
            raise ValueError(f"{given}: {type(model).__name__} grids take no sampling conditions")
        images, columns = translation_panels(model, data.test_images, n, seed)
    else:
        generator = torch.Generator().manual_seed(seed)
        images = model.sample(n, temperature, generator, **conditions)
        columns = math.ceil(math.sqrt(n))
    images = images.float().clamp(0, 1).cpu()
    rows = math.ceil(len(images) / columns)
    _, height, width = images.shape[1:]
    grid = torch.ones(rows * (height + 2), columns * (width + 2))
    for index, image in enumerate(images):
        r, c = divmod(index, columns)
        grid[r * (height + 2) + 1 : r * (height + 2) + 1 + height,
             c * (width + 2) + 1 : c * (width + 2) + 1 + width] = image[0]  # fmt: skip
    return save_image(grid[..., None], path)


def train_generative(
    data: MNIST,
    config: GenerativeConfig | None = None,
    out_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
    fresh: bool = False,
    options: dict | None = None,
) -> GenerativeModel:
    """Trains config.model on data.train_images (options override its spec's); returns
    it in eval mode with .train_stats and, with out_dir, writes there the checkpoint
    (resumed from), metrics.json (the test NLL) and samples.png."""
    config = config if config is not None else GenerativeConfig()
    if not isinstance(config, GenerativeConfig):
        raise ValueError(f"config must be a GenerativeConfig, got {type(config).__name__}")
    spec = config.spec
    options = {**spec.options, **(options or {})}
    batch_size = config.batch_size or spec.batch_size
    lr = config.lr or spec.lr
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    model = _build(spec, options)
    images = data.train_images
    if len(images) < batch_size:
        raise ValueError(f"batch_size {batch_size} is more than the {len(images)} images")
    if model.batches_per_epoch(len(images), batch_size) < 1:
        raise ValueError(
            f"batch_size {batch_size} leaves {spec.name} no full batch of the {len(images)} "
            f"training images"
        )
    run = TrainingRun(
        config,
        out_dir,
        FORMAT,
        VERSION,
        meta={"model": spec.name, "options": options, "train_images": len(images)},
        desc=f"training {spec.name}",
        progress=progress,
        fresh=fresh,
        kind=spec.name,
    )
    payload = run.resume()
    model.to(device)
    labels = data.train_labels

    def epoch_batches(epoch: int):
        return model.epoch_batches(images, labels, batch_size, epoch, config.seed)

    if payload is None:
        model.on_train_start(next(epoch_batches(0))[0].to(device))
    optimizers = model.configure_optimizers(lr)
    base_lrs = [[group["lr"] for group in o.param_groups] for o in optimizers]
    if payload is not None:
        model.load_state_dict(payload["model"])
        for optimizer, state in zip(optimizers, payload["optimizers"], strict=True):
            optimizer.load_state_dict(state)

    def payload_now() -> dict:
        return {
            "model": model.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "name": spec.name,
            "options": options,
        }

    per_epoch = model.batches_per_epoch(len(images), batch_size)
    model.train()
    while run.running():
        epoch, offset = divmod(run.step, per_epoch)
        for index, (batch, batch_labels) in enumerate(epoch_batches(epoch)):
            if index < offset:
                continue  # the batches this epoch had before a resume
            if not run.running():
                break
            factor = config.lr_final_factor**run.progress
            for optimizer, lrs in zip(optimizers, base_lrs):
                for group, group_lr in zip(optimizer.param_groups, lrs):
                    group["lr"] = group_lr * factor
            scalars = model.training_step(
                batch.to(device), batch_labels.to(device), optimizers, config.grad_clip
            )
            run.advance(**scalars)
            if run.checkpoint_due():
                run.save(payload_now())
    model.train_stats = run.finish(payload_now())
    model.eval()
    if out_dir is not None:
        _write_outputs(model, data, Path(out_dir), config)
    return model


def evaluate_model(
    model: GenerativeModel,
    data: MNIST,
    batch_size: int = 500,
    steps: int | None = None,
    eta: float | None = None,
) -> dict:
    """The test scores of a model: its NLL (evaluate_nll) when it has a likelihood; for a
    translation model the scores of its translations of the evaluation digits
    (mp3d.generative.translation.translation_scores: L1 to the known targets, the digit
    classifier's accuracy on them); else the scores of its samples
    (mp3d.generative.evaluation.sample_scores: the Fréchet distance of the repo's digit
    classifier's features, and more), drawn in ``steps`` sampling steps where the sampler
    takes them and has more timesteps (else its default), with DDIM's ``eta`` where it
    applies (steps taken, a sampler with eta); the scores then say "sampling_steps"
    (and "eta")."""
    from mp3d.generative.translation import TranslationModel, translation_scores

    if isinstance(model, ImageModel):
        return evaluate_nll(model, data.test_images, batch_size)
    if isinstance(model, TranslationModel):
        return translation_scores(model, data, batch_size=batch_size)
    from mp3d.generative.evaluation import sample_scores

    conditions = _sampling_steps(model, steps)
    if conditions and eta is not None and model.sampler_takes("eta"):
        conditions["eta"] = float(eta)
    scores = sample_scores(model, data, **conditions)
    if conditions:
        scores["sampling_steps"] = conditions["steps"]
    return scores


def _sampling_steps(model: GenerativeModel, steps: int | None) -> dict:
    """{"steps": steps} where the model's sampler takes steps and has more timesteps than
    that (else its default sampler: {})."""
    if steps is None or not model.sampler_takes("steps") or steps >= model.timesteps:
        return {}
    return {"steps": steps}


def _write_outputs(
    model: GenerativeModel, data: MNIST, out: Path, config: GenerativeConfig
) -> None:
    from mp3d.rendering import write_json

    scores = evaluate_model(model, data, config.eval_batch_size, config.eval_steps)
    model.test_scores = scores
    write_json(out / "metrics.json", {"model": config.model, **scores, **model.train_stats})
    steps = _sampling_steps(model, config.eval_steps)
    sample_grid(model, out / "samples.png", config.samples, seed=config.seed, data=data, **steps)


def load_generative(path: str | Path, device=None) -> GenerativeModel:
    """The model in a train_generative checkpoint (the file, or its run folder), in eval
    mode; errors name the file."""
    from mp3d.io import read_checkpoint
    from mp3d.training import CHECKPOINT_NAME

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    payload = read_checkpoint(path, FORMAT, VERSION, "generative-model")
    try:
        spec = model_spec(payload["name"])
        model = _build(spec, dict(payload["options"]))
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path}: not a usable generative-model checkpoint ({error})") from error
    model.train_stats = {"steps": int(payload["step"]), "seconds": float(payload["elapsed"])}
    return model.to(resolve_device(device)).eval()
