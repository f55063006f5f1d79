"""Forward+backward speed and peak memory of mp3d.ops.volume_rendering.

Compares the compiled kernel with the torch reference (and, on a GPU, with nerfacc's
weights + accumulation when nerfacc is installed), side by side in one process.

    python bench/bench_volume_rendering.py [--device cpu|cuda] [--repeats N]
        [--shapes 4096x192,65536x64]   # rays x samples per ray, comma-separated
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds, peak_bytes  # noqa: E402

from mp3d._backend import backend  # noqa: E402
from mp3d.ops.volume_rendering import render_rays  # noqa: E402

SHAPES = [(4096, 192), (65536, 64)]


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """'4096x192,65536x64' -> [(4096, 192), (65536, 64)]: rays x samples per ray."""
    try:
        shapes = [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",")]
    except ValueError:
        shapes = []
    if not shapes or any(len(s) != 2 or min(s) < 1 for s in shapes):
        raise argparse.ArgumentTypeError(f"expected RAYSxSAMPLES[,RAYSxSAMPLES...], got {text!r}")
    return shapes


def make_inputs(n_rays: int, n_samples: int, device: torch.device, seed: int = 0) -> dict:
    """Uniform samples between near=2 and far=6 with random density and colour."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    edges = torch.linspace(2.0, 6.0, n_samples + 1)
    jitter = torch.rand(n_rays, 1, generator=g) * (4.0 / n_samples) * 0.5
    t_starts = (edges[:-1] + jitter).reshape(-1)
    t_ends = (edges[1:] + jitter).reshape(-1)
    return {
        "sigmas": (torch.rand(n_rays * n_samples, generator=g) * 2.0).to(device),
        "rgbs": torch.rand(n_rays * n_samples, 3, generator=g).to(device),
        "t_starts": t_starts.to(device),
        "t_ends": t_ends.to(device),
        "ray_indices": torch.arange(n_rays).repeat_interleave(n_samples).to(device),
        "n_rays": n_rays,
        "grad_rgb": torch.rand(n_rays, 3, generator=g).to(device),
    }


def mp3d_step(inputs: dict, impl: str):
    """One forward+backward through mp3d.ops.volume_rendering.render_rays."""
    sigmas = inputs["sigmas"].detach().requires_grad_()
    rgbs = inputs["rgbs"].detach().requires_grad_()

    def step():
        sigmas.grad = rgbs.grad = None
        rgb, opacity, depth = render_rays(
            sigmas,
            rgbs,
            inputs["t_starts"],
            inputs["t_ends"],
            inputs["ray_indices"],
            inputs["n_rays"],
            background=1.0,
            impl=impl,
        )
        ((rgb * inputs["grad_rgb"]).sum() + opacity.sum() + 0.1 * depth.sum()).backward()

    return step


def nerfacc_step(inputs: dict):
    """The same computation with nerfacc: render_weight_from_density + accumulate_along_rays."""
    import nerfacc

    sigmas = inputs["sigmas"].detach().requires_grad_()
    rgbs = inputs["rgbs"].detach().requires_grad_()
    ray_indices, n_rays = inputs["ray_indices"], inputs["n_rays"]
    midpoints = (inputs["t_starts"] + inputs["t_ends"]) * 0.5

    def step():
        sigmas.grad = rgbs.grad = None
        weights, _, _ = nerfacc.render_weight_from_density(
            inputs["t_starts"], inputs["t_ends"], sigmas, ray_indices=ray_indices, n_rays=n_rays
        )
        rgb = nerfacc.accumulate_along_rays(
            weights, values=rgbs, ray_indices=ray_indices, n_rays=n_rays
        )
        opacity = nerfacc.accumulate_along_rays(
            weights, values=None, ray_indices=ray_indices, n_rays=n_rays
        )
        depth = nerfacc.accumulate_along_rays(
            weights, values=midpoints[:, None], ray_indices=ray_indices, n_rays=n_rays
        )
        rgb = rgb + (1.0 - opacity)
        ((rgb * inputs["grad_rgb"]).sum() + opacity.sum() + 0.1 * depth.sum()).backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--shapes",
        type=parse_shapes,
        default=SHAPES,
        help="rays x samples per ray, e.g. 4096x192,65536x64 (the default)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    kernel = "cuda" if device.type == "cuda" else "cpp"
    print(
        f"device {device} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
        f"kernels {backend().source}"
    )
    try:
        import nerfacc  # noqa: F401

        have_nerfacc = device.type == "cuda"
    except ImportError:
        have_nerfacc = False
    if device.type == "cuda" and not have_nerfacc:
        print("nerfacc not installed: peer comparison skipped")

    header = f"{'rays x samples':>16} {'method':>10} {'fwd+bwd ms':>11} {'peak MiB':>9}"
    print(header)
    for n_rays, n_samples in args.shapes:
        inputs = make_inputs(n_rays, n_samples, device)
        steps = {"torch": mp3d_step(inputs, "torch"), kernel: mp3d_step(inputs, kernel)}
        if have_nerfacc:
            steps["nerfacc"] = nerfacc_step(inputs)
        results = {}
        for name, step in steps.items():
            try:
                seconds = median_seconds(step, device, repeats=args.repeats)
                memory = peak_bytes(step, device)
            except Exception as error:  # a peer that fails at run time: report, go on
                if name != "nerfacc":
                    raise
                print(f"nerfacc failed ({type(error).__name__}: {error}): peer comparison skipped")
                have_nerfacc = False
                continue
            results[name] = (seconds, memory)
            print(
                f"{f'{n_rays} x {n_samples}':>16} {name:>10} {seconds * 1e3:>11.2f} "
                f"{memory / 2**20:>9.1f}"
            )
        ref_t, ref_m = results["torch"]
        ker_t, ker_m = results[kernel]
        print(
            f"{'':>16} {kernel} vs torch reference: {ref_t / ker_t:.1f}x faster, "
            f"{ker_m / ref_m:.2f}x the peak memory"
        )
        if have_nerfacc:
            peer_t, peer_m = results["nerfacc"]
            print(
                f"{'':>16} {kernel} vs nerfacc: {peer_t / ker_t:.2f}x faster, "
                f"{ker_m / max(peer_m, 1):.2f}x the peak memory"
            )


if __name__ == "__main__":
    main()
