"""Forward+backward speed and peak memory of mp3d.ops.skinning.lbs, and the speed of
mp3d.ops.skinning.forward_kinematics (CPU).

Compares the compiled kernel with the torch reference, which blends a 4x4 matrix per vertex
with einsum ([B,V,4,4], the usual PyTorch way, as in smplx), side by side in one process.
Backward takes a fixed upstream gradient [B,V,3]; gradients flow to the vertices and the
transforms (the weights are fixed, as in SMPL; add --weights-grad to differentiate them
too). Two kinds of weights: SMPL-like sparse rows (1 to 4 joints per vertex, which the kernel
exploits) and dense rows (every joint, its worst case).

    python bench/bench_skinning.py [--device cpu|cuda] [--batch B] [--vertices V]
        [--joints J] [--weights-grad] [--threads N] [--repeats N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import median_seconds, peak_bytes  # noqa: E402

from mp3d._backend import backend  # noqa: E402
from mp3d.body.skeleton import SMPL_PARENTS  # noqa: E402
from mp3d.ops.skinning import forward_kinematics, lbs  # noqa: E402


def make_weights(n_vertices: int, n_joints: int, sparse: bool, g: torch.Generator) -> torch.Tensor:
    """Rows summing to 1: 1 to 4 random joints per vertex if sparse, else all joints."""
    raw = torch.rand(n_vertices, n_joints, generator=g) + 1e-3
    if sparse:
        keep = torch.rand(n_vertices, n_joints, generator=g).argsort(dim=1) < torch.randint(
            1, 5, (n_vertices, 1), generator=g
        )
        raw = raw * keep
    return raw / raw.sum(dim=1, keepdim=True)


def make_transforms(n_batch: int, n_joints: int, g: torch.Generator) -> torch.Tensor:
    """Random rigid transforms [B,J,4,4]: rotations from QR, translations in [-0.5, 0.5]."""
    q, r = torch.linalg.qr(torch.randn(n_batch, n_joints, 3, 3, generator=g))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    transforms = torch.eye(4).repeat(n_batch, n_joints, 1, 1)
    transforms[..., :3, :3] = q
    transforms[..., :3, 3] = torch.rand(n_batch, n_joints, 3, generator=g) - 0.5
    return transforms


def make_inputs(
    n_batch: int, n_vertices: int, n_joints: int, sparse: bool, device: torch.device, seed: int = 0
) -> dict:
    """Rest vertices [B,V,3] in a 1.8 m box, weights, transforms and an upstream gradient."""
    g = torch.Generator().manual_seed(seed)
    return {
        "vertices": ((torch.rand(n_batch, n_vertices, 3, generator=g) - 0.5) * 1.8).to(device),
        "weights": make_weights(n_vertices, n_joints, sparse, g).to(device),
        "transforms": make_transforms(n_batch, n_joints, g).to(device),
        "grad_posed": torch.randn(n_batch, n_vertices, 3, generator=g).to(device),
    }


def lbs_step(inputs: dict, impl: str, weights_grad: bool):
    """One forward+backward through mp3d.ops.skinning.lbs with a fixed upstream gradient."""
    vertices = inputs["vertices"].detach().requires_grad_()
    weights = inputs["weights"].detach().requires_grad_(weights_grad)
    transforms = inputs["transforms"].detach().requires_grad_()

    def step():
        lbs(vertices, weights, transforms, impl=impl).backward(inputs["grad_posed"])
        # Freed here, inside the step, so that peak_bytes sees both ends of their lives.
        vertices.grad = weights.grad = transforms.grad = None

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument(
        "--batch", type=int, default=None, help="batch size B (default: 64 on CPU, 1024 on CUDA)"
    )
    parser.add_argument("--vertices", type=int, default=6890, help="V (default: SMPL's 6890)")
    parser.add_argument("--joints", type=int, default=24, help="J (default: SMPL's 24)")
    parser.add_argument(
        "--weights-grad", action="store_true", help="differentiate the weights as well"
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kernel = "cuda" if device.type == "cuda" else "cpp"
    n_batch = args.batch if args.batch is not None else (1024 if device.type == "cuda" else 64)
    print(
        f"device {device} | torch {torch.__version__} | threads {torch.get_num_threads()} | "
        f"kernels {backend().source} | B={n_batch} V={args.vertices} J={args.joints} | "
        f"grads: vertices, transforms{', weights' if args.weights_grad else ''}"
    )
    print(f"{'weights':>8} {'method':>7} {'fwd+bwd ms':>11} {'peak MiB':>9}")
    for sparse in (True, False):
        label = "sparse" if sparse else "dense"
        inputs = make_inputs(n_batch, args.vertices, args.joints, sparse, device)
        results = {}
        for impl in ("torch", kernel):
            step = lbs_step(inputs, impl, args.weights_grad)
            seconds = median_seconds(step, device, repeats=args.repeats)
            memory = peak_bytes(step, device)
            results[impl] = (seconds, memory)
            print(f"{label:>8} {impl:>7} {seconds * 1e3:>11.2f} {memory / 2**20:>9.1f}")
        ref_t, ref_m = results["torch"]
        ker_t, ker_m = results[kernel]
        print(
            f"{'':>8} {kernel} vs torch reference: {ref_t / ker_t:.1f}x faster, "
            f"{ker_m / max(ref_m, 1):.3f}x the peak memory"
        )
    if device.type == "cpu":
        kinematics_table(args.repeats)


def kinematics_table(repeats: int) -> None:
    """Forward+backward of forward_kinematics (SMPL's 24-joint tree, axis-angle rotations):
    the C++ kernel against the torch reference, at the batch sizes body fitting uses."""
    parents = [int(p) for p in SMPL_PARENTS]
    print(f"forward kinematics, {len(parents)} joints, axis-angle rotations")
    print(f"{'B':>6} {'torch ms':>9} {'cpp ms':>9} {'speedup':>8}")
    for n_batch in (1, 4, 64, 1024):
        g = torch.Generator().manual_seed(n_batch)
        rotations = (0.5 * torch.randn(n_batch, 24, 3, generator=g)).requires_grad_()
        joints = torch.randn(n_batch, 24, 3, generator=g).requires_grad_()
        times = {}
        for impl in ("torch", "cpp"):

            def step(impl=impl, rotations=rotations, joints=joints):
                _, world, skin = forward_kinematics(rotations, joints, parents, impl=impl)
                (world.sum() + skin.sum()).backward()
                rotations.grad = joints.grad = None

            times[impl] = median_seconds(step, torch.device("cpu"), repeats=repeats)
        print(
            f"{n_batch:>6} {times['torch'] * 1e3:>9.3f} {times['cpp'] * 1e3:>9.3f} "
            f"{times['torch'] / times['cpp']:>7.1f}x"
        )


if __name__ == "__main__":
    main()
