"""Forward+backward speed and peak memory of mp3d.ops.hash_encoding.

Compares the compiled kernel with the torch reference on the Instant-NGP layout: 16 levels
of 2 features, up to 2^19 rows per level, resolutions 16 to 2048. The backward pass gives
the embeddings gradient (NeRF training), and the points gradient too with --points-grad.
A second table times the double backward: an eikonal step (grad_points with create_graph,
then sum((||grad_points|| - 1)^2) differentiated into the embeddings, as IGR trains).

    python bench/bench_hash_encoding.py [--device cpu|cuda] [--repeats N] [--points-grad]
        [--points 262144,1048576]   # default: 2^18 on CPU, 2^18 and 2^20 on CUDA
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds, peak_bytes  # noqa: E402

from mp3d._backend import backend  # noqa: E402
from mp3d.ops.hash_encoding import hash_encode  # noqa: E402

N_LEVELS, N_FEATURES, TABLE_SIZE, BASE_RESOLUTION, FINEST_RESOLUTION = 16, 2, 2**19, 16, 2048


def instant_ngp_layout() -> tuple[torch.Tensor, torch.Tensor]:
    """resolutions [L] growing geometrically from base to finest, and offsets [L+1] of tables
    of min(TABLE_SIZE, (res+1)^3) rows (the coarse levels dense, the fine ones hashed)."""
    growth = math.exp(math.log(FINEST_RESOLUTION / BASE_RESOLUTION) / (N_LEVELS - 1))
    resolutions = [round(BASE_RESOLUTION * growth**level) for level in range(N_LEVELS)]
    sizes = [min(TABLE_SIZE, (res + 1) ** 3) for res in resolutions]
    return torch.tensor(resolutions), torch.tensor([0] + sizes).cumsum(0)


def make_inputs(n_points: int, device: torch.device, seed: int = 0) -> dict:
    """Uniform points in the unit cube, small random embeddings and an upstream gradient."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    resolutions, offsets = instant_ngp_layout()
    return {
        "points": torch.rand(n_points, 3, generator=g).to(device),
        "embeddings": (torch.rand(int(offsets[-1]), N_FEATURES, generator=g) * 2e-4 - 1e-4).to(
            device
        ),
        "resolutions": resolutions,
        "offsets": offsets,
        "grad_features": torch.rand(n_points, N_LEVELS * N_FEATURES, generator=g).to(device),
    }


def encode_step(inputs: dict, impl: str, points_grad: bool):
    """One forward+backward through hash_encode."""
    points = inputs["points"].detach().requires_grad_(points_grad)
    embeddings = inputs["embeddings"].detach().requires_grad_()

    def step():
        points.grad = embeddings.grad = None
        features = hash_encode(
            points, embeddings, inputs["resolutions"], inputs["offsets"], impl=impl
        )
        (features * inputs["grad_features"]).sum().backward()

    return step


def eikonal_step(inputs: dict, impl: str):
    """One forward, first backward with create_graph and double backward: the eikonal loss
    of f = features @ readout differentiated into the embeddings and the readout."""
    embeddings = inputs["embeddings"].detach().requires_grad_()
    readout = inputs["grad_features"][0].detach().clone().requires_grad_()

    def step():
        embeddings.grad = readout.grad = None
        points = inputs["points"].detach().requires_grad_()
        features = hash_encode(
            points, embeddings, inputs["resolutions"], inputs["offsets"], impl=impl
        )
        (grad_points,) = torch.autograd.grad((features @ readout).sum(), points, create_graph=True)
        ((grad_points.norm(dim=-1) - 1) ** 2).sum().backward()

    return step


def compare(rows: list[tuple[int, str, float, int]], kernel: str) -> None:
    """Prints the kernel's speed and memory against the torch reference's."""
    (ref_t, ref_m), (ker_t, ker_m) = ((t, m) for _, _, t, m in rows)
    print(
        f"{'':>8} {kernel} vs torch reference: {ref_t / ker_t:.1f}x faster, "
        f"{ker_m / ref_m:.3f}x the peak memory"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--points-grad", action="store_true", help="also differentiate with respect to the points"
    )
    parser.add_argument(
        "--points",
        type=lambda text: [int(v) for v in text.split(",")],
        default=None,
        help="comma-separated point counts (default: 262144 on CPU, 262144,1048576 on CUDA)",
    )
    parser.add_argument(
        "--eikonal-points",
        type=lambda text: [int(v) for v in text.split(",")],
        default=None,
        help="point counts of the double-backward table (default: 65536 on CPU, 262144 on "
        "CUDA; 0 skips it)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    kernel = "cuda" if device.type == "cuda" else "cpp"
    sizes = args.points or ([2**18, 2**20] if device.type == "cuda" else [2**18])
    resolutions, offsets = instant_ngp_layout()
    print(
        f"device {device} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
        f"kernels {backend().source}"
    )
    print(
        f"{N_LEVELS} levels x {N_FEATURES} features, resolutions {resolutions.tolist()}, "
        f"{int(offsets[-1])} rows; gradient w.r.t. embeddings"
        + (" and points" if args.points_grad else "")
    )
    print(f"{'points':>8} {'method':>7} {'fwd+bwd ms':>11} {'peak MiB':>9}")
    for n_points in sizes:
        inputs = make_inputs(n_points, device)
        rows = []
        for name in ("torch", kernel):
            step = encode_step(inputs, name, args.points_grad)
            seconds = median_seconds(step, device, repeats=args.repeats, warmup=1)
            memory = peak_bytes(step, device)
            rows.append((n_points, name, seconds, memory))
            print(f"{n_points:>8} {name:>7} {seconds * 1e3:>11.1f} {memory / 2**20:>9.1f}")
        compare(rows, kernel)
    eikonal_sizes = args.eikonal_points or ([2**18] if device.type == "cuda" else [2**16])
    eikonal_sizes = [n for n in eikonal_sizes if n > 0]
    if eikonal_sizes:
        print("double backward: eikonal loss of a linear readout, into the embeddings")
        print(f"{'points':>8} {'method':>7} {'fwd+2bwd ms':>11} {'peak MiB':>9}")
    for n_points in eikonal_sizes:
        inputs = make_inputs(n_points, device)
        rows = []
        for name in ("torch", kernel):
            step = eikonal_step(inputs, name)
            seconds = median_seconds(step, device, repeats=args.repeats, warmup=1)
            memory = peak_bytes(step, device)
            rows.append((n_points, name, seconds, memory))
            print(f"{n_points:>8} {name:>7} {seconds * 1e3:>11.1f} {memory / 2**20:>9.1f}")
        compare(rows, kernel)


if __name__ == "__main__":
    main()
