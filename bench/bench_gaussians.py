"""Forward+backward speed and peak memory of mp3d.ops.gaussians.rasterize.

Renders N random Gaussians (SH degree 3, small like a trained scene's) into one view and
backpropagates a loss on the image, then compares:
- the compiled kernel (C++ on CPU, CUDA on GPU) with the torch reference, run with its
  per-pixel-chunk work under activation checkpointing (plain autograd would keep every
  pixel x Gaussian intermediate alive: hundreds of GB at the CPU target size);
- on a GPU, gsplat's `rasterization` side by side, when gsplat is installed.

    python bench/bench_gaussians.py                       # CPU: 100k Gaussians, 256x256
    python bench/bench_gaussians.py --device cuda         # GPU: 1M Gaussians, 1920x1080
    python bench/bench_gaussians.py --no-reference        # kernel (and gsplat) only
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from torch.utils.checkpoint import checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds, peak_bytes  # noqa: E402

from mp3d._backend import backend  # noqa: E402
from mp3d.ops import gaussians as G  # noqa: E402

SH_DEGREE = 3


def make_scene(n: int, width: int, height: int, device: torch.device, seed: int = 0) -> dict:
    """n Gaussians in a box 2-6 units in front of a camera with a 60 degree field of view,
    sized so that an average one covers a few pixels, as after training."""
    g = torch.Generator().manual_seed(seed)
    focal = 0.5 * width / math.tan(math.radians(30.0))
    depth = torch.rand(n, generator=g) * 4.0 + 2.0
    xy = (
        (torch.rand(n, 2, generator=g) * 2.0 - 1.0)
        * depth[:, None]
        * torch.tensor([0.5 * width / focal, 0.5 * height / focal])
    )
    typical_scale = 2.0 * math.sqrt(width * height / n) / focal * 4.0
    scene = {
        "means": torch.cat([xy, depth[:, None]], dim=1),
        "quats": torch.randn(n, 4, generator=g),
        "scales": torch.rand(n, 3, generator=g) * typical_scale + 0.1 * typical_scale,
        "opacities": torch.rand(n, generator=g) * 0.9 + 0.05,
        "colors": torch.randn(n, (SH_DEGREE + 1) ** 2, 3, generator=g) * 0.2,
        "viewmat": torch.eye(4),
        "K": torch.tensor([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]]),
    }
    return {k: v.to(device) for k, v in scene.items()}


def _leaves(scene: dict) -> dict:
    names = ("means", "quats", "scales", "opacities", "colors")
    return {k: scene[k].detach().clone().requires_grad_() for k in names}


def mp3d_step(scene: dict, width: int, height: int, impl: str):
    """One forward+backward of mp3d's rasterize with `impl`."""

    def step():
        leaves = _leaves(scene)
        rgb, alpha, _, _ = G.rasterize(
            **leaves,
            viewmat=scene["viewmat"],
            K=scene["K"],
            width=width,
            height=height,
            sh_degree=SH_DEGREE,
            impl=impl,
        )
        (rgb.sum() + alpha.sum()).backward()

    return step


def _reference_chunked(means2d, conics, colors, opacities, depths, width, height, chunk):
    """rasterize_reference's rgb and alpha with each pixel chunk's work checkpointed."""
    order = torch.argsort(depths.detach(), stable=True)
    means2d, conics, colors, opacities = (
        means2d[order],
        conics[order],
        colors[order],
        opacities[order],
    )
    pixels = G._pixel_centres(width, height, means2d)

    def chunk_outputs(px, m, c, col, o):
        weights = G._composite_weights(G._splat_alphas(px, m, c, o))
        return weights @ col, weights.sum(dim=1)

    rgb, alpha = [], []
    for start in range(0, pixels.shape[0], chunk):
        r, a = checkpoint(
            chunk_outputs,
            pixels[start : start + chunk],
            means2d,
            conics,
            colors,
            opacities,
            use_reentrant=False,
        )
        rgb.append(r)
        alpha.append(a)
    return torch.cat(rgb).reshape(height, width, 3), torch.cat(alpha).reshape(height, width)


def reference_step(scene: dict, width: int, height: int, chunk: int):
    """One forward+backward of the torch reference, pixel chunks checkpointed."""

    def step():
        leaves = _leaves(scene)
        means2d, conics, depths, _, visible = G.project_gaussians(
            leaves["means"],
            leaves["quats"],
            leaves["scales"],
            scene["viewmat"],
            scene["K"],
            width,
            height,
            impl="torch",
        )
        camera_centre = -scene["viewmat"][:3, :3].T @ scene["viewmat"][:3, 3]
        rgbs = G.sh_colors(
            leaves["colors"], leaves["means"] - camera_centre, SH_DEGREE, impl="torch"
        )
        keep = torch.nonzero(visible).squeeze(1)
        rgb, alpha = _reference_chunked(
            means2d[keep],
            conics[keep],
            rgbs[keep],
            leaves["opacities"][keep],
            depths[keep],
            width,
            height,
            chunk,
        )
        (rgb.sum() + alpha.sum()).backward()

    return step


def gsplat_step(scene: dict, width: int, height: int):
    """One forward+backward of gsplat's rasterization, or None if gsplat is missing."""
    try:
        from gsplat import rasterization
    except ImportError:
        return None

    def step():
        leaves = _leaves(scene)
        colors, _, _ = rasterization(
            leaves["means"],
            leaves["quats"],
            leaves["scales"],
            leaves["opacities"],
            leaves["colors"],
            scene["viewmat"][None],
            scene["K"][None],
            width,
            height,
            sh_degree=SH_DEGREE,
            packed=False,
            render_mode="RGB",
        )
        colors.sum().backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gaussians", type=int, help="default: 100k on CPU, 1M on CUDA")
    parser.add_argument("--width", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-repeats", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=256, help="reference pixels per chunk")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    n = args.gaussians or (1_000_000 if on_gpu else 100_000)
    width = args.width or (1920 if on_gpu else 256)
    height = args.height or (1080 if on_gpu else 256)
    impl = "cuda" if on_gpu else "cpp"

    scene = make_scene(n, width, height, device)
    with torch.no_grad():
        _, _, _, radii, visible = G.project_gaussians(
            scene["means"],
            scene["quats"],
            scene["scales"],
            scene["viewmat"],
            scene["K"],
            width,
            height,
            impl=impl,
        )
    print(
        f"{n:,} Gaussians (SH degree {SH_DEGREE}), {width}x{height}, {device}, "
        f"threads={torch.get_num_threads()}, kernels: {backend().source}"
    )
    print(
        f"visible: {int(visible.sum()):,}, median radius of visible: "
        f"{float(radii[visible].float().median()):.1f} px"
    )

    rows = []
    kernel = mp3d_step(scene, width, height, impl)
    rows.append(
        (
            f"mp3d {impl}",
            median_seconds(kernel, device, repeats=args.repeats),
            peak_bytes(kernel, device),
        )
    )
    peer = gsplat_step(scene, width, height) if on_gpu else None
    if on_gpu and peer is None:
        print("gsplat: not installed (pip install gsplat; it compiles its CUDA code on first use)")
    if peer is not None:
        try:
            rows.append(
                (
                    "gsplat rasterization",
                    median_seconds(peer, device, repeats=args.repeats),
                    peak_bytes(peer, device),
                )
            )
        except Exception as error:  # e.g. its CUDA code failed to compile: report, go on
            print(f"gsplat failed ({type(error).__name__}: {error}): peer comparison skipped")
    if not args.no_reference:
        reference = reference_step(scene, width, height, args.chunk)
        rows.append(
            (
                "torch reference",
                median_seconds(reference, device, repeats=args.reference_repeats, warmup=0),
                peak_bytes(reference, device),
            )
        )

    base_time, base_memory = rows[0][1], rows[0][2]
    print(
        f"\n{'forward+backward':<22} {'time':>11} {'peak memory':>13} "
        f"{'mp3d faster by':>15} {'mp3d memory ratio':>18}"
    )
    for name, seconds, memory in rows:
        print(
            f"{name:<22} {seconds * 1e3:>8.1f} ms {memory / 2**20:>9.1f} MiB "
            f"{seconds / base_time:>14.1f}x {base_memory / max(memory, 1):>17.2f}x"
        )


if __name__ == "__main__":
    main()
