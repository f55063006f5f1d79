"""Image-to-image tasks made from the MNIST digits, for the translation models of
mp3d.generative.translation: each task is a fixed, deterministic map of a digit, so the
target of every translation is known by construction.

Images are grey digits float32 [B,1,H,W] in [0,1] (mp3d.data.mnist's "grey" view: pixel / 255).

Paired tasks (pix2pix: the input is made from the digit, the digit is the target):

- "edges": the Sobel edge map, |(G_x, G_y)| / 4 clamped to [0,1] (a sharp 0 -> 1 step reads
  1), so a stroke becomes its two outlines and the model has to fill them in;
- "half": the top half of the digit (rows 0..H/2-1 kept, the rest set to 0), so the model
  has to complete the bottom half.

Unpaired domains (CycleGAN: domain A is the digits, domain B a map of them):

- "thicken": strokes thickened by a 3x3 grey-scale dilation (max over the 3x3 window);
- "invert": 1 - x (white digits on black -> black digits on white).

A domain is "digit" or a task's name: ``domain_images`` makes a domain's images of digits,
``as_digits`` turns them back into what the digit classifier reads.

``unpaired_split`` halves the training images: domain A is the first half as it is,
domain B the map of the second half, so no digit is ever shown in both domains
(``unpaired_batches``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from mp3d.data.mnist import epoch_generator

__all__ = [
    "DOMAINS",
    "PAIRED_TASKS",
    "UNPAIRED_TASKS",
    "as_digits",
    "check_task",
    "domain_images",
    "edge_map",
    "invert",
    "thicken",
    "top_half",
    "unpaired_batches",
    "unpaired_split",
]

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _check(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be grey images [B, 1, H, W], got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floats in [0, 1], got dtype {x.dtype}")
    return x


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """Sobel edge magnitude of digits x [B,1,H,W] in [0,1]: sqrt(G_x^2 + G_y^2) / 4 clamped to
    [0,1], zero padding; [B,1,H,W]."""
    x = _check(x)
    kernel = _SOBEL.to(x)
    kernels = torch.stack([kernel, kernel.t()]).unsqueeze(1)  # [2,1,3,3]: G_x, G_y
    gradient = F.conv2d(x, kernels, padding=1)
    return (gradient.square().sum(1, keepdim=True).sqrt() / 4).clamp(0, 1)


def top_half(x: torch.Tensor) -> torch.Tensor:
    """Digits x [B,1,H,W] with rows H//2.. set to 0 (the bottom half masked): [B,1,H,W]."""
    x = _check(x)
    out = x.clone()
    out[..., x.shape[-2] // 2 :, :] = 0
    return out


def thicken(x: torch.Tensor) -> torch.Tensor:
    """Digits x [B,1,H,W] with strokes thickened by a 3x3 grey-scale dilation: [B,1,H,W]."""
    return F.max_pool2d(_check(x), 3, stride=1, padding=1)


def invert(x: torch.Tensor) -> torch.Tensor:
    """1 - x of images x [B,1,H,W] in [0,1] (its own inverse)."""
    return 1 - _check(x)


PAIRED_TASKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "edges": edge_map,
    "half": top_half,
}
UNPAIRED_TASKS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "thicken": thicken,
    "invert": invert,
}


DOMAINS = ("digit", *PAIRED_TASKS, *UNPAIRED_TASKS)


def check_task(task: object, tasks: tuple[str, ...], name: str = "task") -> str:
    """`task` if it is one of `tasks`; ValueError naming the argument `name` otherwise."""
    if not isinstance(task, str) or task not in tasks:
        raise ValueError(f"{name} must be one of {tasks}, got {task!r}")
    return task


def domain_images(domain: str, digits: torch.Tensor) -> torch.Tensor:
    """The images [B,1,H,W] of `domain` made from digits [B,1,H,W] in [0,1]: the digits
    themselves for "digit", else the task's map of them (see the module docstring)."""
    domain = check_task(domain, DOMAINS, "domain")
    if domain == "digit":
        return _check(digits, "digits")
    return {**PAIRED_TASKS, **UNPAIRED_TASKS}[domain](digits)


def as_digits(domain: str, images: torch.Tensor) -> torch.Tensor:
    """Images [B,1,H,W] of `domain` as the digit classifier reads digits (white on black):
    "invert" is inverted back, every other domain already is."""
    domain = check_task(domain, DOMAINS, "domain")
    return invert(images) if domain == "invert" else _check(images, "images")


def unpaired_split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (domain A [n//2], domain B [n//2]) of n training images: A the first n//2,
    B the next n//2 (an odd last image is left out); disjoint by construction."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (one image per domain at least), got {n!r}")
    half = n // 2
    return torch.arange(half), torch.arange(half, 2 * half)


def unpaired_batches(
    images,
    batch_size: int,
    task: str,
    *,
    epoch: int,
    seed: int = 0,
    labels=None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of unpaired batches of uint8 digits images [N,H,W] (with labels [N], or
    none: -1): x [B,2,H,W] (channel 0: domain A digits from the first half of images,
    channel 1: domain B images made by ``task`` from the second half, both grey in [0,1])
    and labels int64 [B,2] (the classes of the digits in channel 0 and channel 1).

    Each half is shuffled on its own by a generator fixed by (seed, epoch), so which A digit
    meets which B image changes between epochs, and epoch e is the same after a resume;
    the last incomplete batch is dropped (len(images) // 2 // batch_size batches).
    """
    pixels = torch.as_tensor(np.asarray(images))
    if pixels.dtype != torch.uint8 or pixels.dim() != 3:
        raise ValueError(
            f"images must be uint8 digits [N,H,W], got {pixels.dtype} {list(pixels.shape)}"
        )
    make_b = UNPAIRED_TASKS[check_task(task, tuple(UNPAIRED_TASKS))]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    index_a, index_b = unpaired_split(len(pixels))
    if batch_size > len(index_a):
        raise ValueError(
            f"batch_size {batch_size} is more than the {len(index_a)} images of each domain "
            f"(half of the {len(pixels)} training images)"
        )
    if labels is None:
        labels = torch.full((len(pixels),), -1, dtype=torch.int64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if labels.shape != (len(pixels),):
        raise ValueError(f"labels must have shape [{len(pixels)}], got {list(labels.shape)}")
    generator = epoch_generator(seed, epoch)
    index_a = index_a[torch.randperm(len(index_a), generator=generator)]
    index_b = index_b[torch.randperm(len(index_b), generator=generator)]
    for start in range(0, len(index_a) - batch_size + 1, batch_size):
        a = index_a[start : start + batch_size]
        b = index_b[start : start + batch_size]
        digits_a = pixels[a].float().div(255).unsqueeze(1)
        images_b = make_b(pixels[b].float().div(255).unsqueeze(1))
        yield torch.cat([digits_a, images_b], 1), torch.stack([labels[a], labels[b]], 1)
