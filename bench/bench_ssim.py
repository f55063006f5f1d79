"""Speed of the training loss's SSIM with its gradient, at the splatting image sizes.

Three ways to the same value and gradient of one [S,S,3] image pair: mp3d.metrics.ssim with
autograd (dense 11x11 depthwise blurs), the torch strips of mp3d.ops.ssim (impl="torch",
the reference and the CUDA path) and its C++ kernel (impl="cpp"); the script checks the
three agree, then prints milliseconds and the ratios to the kernel.

    python bench/bench_ssim.py                     # 200, 400 and 800 px, 2 threads
    python bench/bench_ssim.py --sizes 800 --threads 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds  # noqa: E402

from mp3d.metrics import ssim  # noqa: E402
from mp3d.ops.ssim import ssim_loss_value  # noqa: E402

CPU = torch.device("cpu")


def image_pair(size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A target in [0,1] and a prediction near it, as late in training."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand(size, size, 3, generator=generator)
    noise = 0.05 * torch.randn(size, size, 3, generator=generator)
    return (target + noise).clamp(0, 1), target


def autograd_ssim(prediction: torch.Tensor, target: torch.Tensor):
    leaf = prediction.clone().requires_grad_()
    value = ssim(leaf, target)
    (grad,) = torch.autograd.grad(value, leaf)
    return value.detach(), grad


def ways_for(prediction: torch.Tensor, target: torch.Tensor) -> dict:
    """The three ways to (value, gradient), as calls without arguments."""
    return {
        "autograd": lambda: autograd_ssim(prediction, target),
        "strips": lambda: ssim_loss_value(prediction, target, impl="torch"),
        "kernel": lambda: ssim_loss_value(prediction, target, impl="cpp"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 800])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"SSIM value + gradient of one [S,S,3] pair, {args.threads} threads; ms (median)")
    header = ("size", "autograd", "strips", "kernel", "x autograd", "x strips")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (6, 10, 10, 10, 11, 9))))
    for size in args.sizes:
        ways = ways_for(*image_pair(size))
        results = {name: way() for name, way in ways.items()}
        value, grad = results["kernel"]
        scale = float(results["autograd"][1].abs().max())
        for name, (v, g) in results.items():
            if abs(float(v - value)) > 1e-5 or float((g - grad).abs().max()) > 1e-4 * scale:
                raise SystemExit(f"{name} disagrees with the kernel at {size} px")
        ms = {
            name: 1e3 * median_seconds(way, CPU, repeats=args.repeats, warmup=1)
            for name, way in ways.items()
        }
        print(
            f"{size:>6} {ms['autograd']:>10.1f} {ms['strips']:>10.1f} {ms['kernel']:>10.1f} "
            f"{ms['autograd'] / ms['kernel']:>10.2f}x {ms['strips'] / ms['kernel']:>8.2f}x"
        )


if __name__ == "__main__":
    main()
