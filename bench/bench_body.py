"""Forward+backward speed of the SMPL body model, mp3d against smplx, side by side in one process.

Both models read the same model file: the built-in body (mp3d/body/data/builtin_body.npz, or
--model PATH, any file mp3d.body.SMPL reads) is written as a pickled dict of arrays in a
temporary directory, the layout smplx.SMPL reads from a path. Before timing, both are run
on the same inputs and must give the same vertices (float32 round-off) and rest joints.

One step is: vertices from betas [B,10], body_pose [B,69], global_orient [B,3] and transl
[B,3] (all requiring gradients), then backward of <vertices, R> for a fixed random R [B,V,3].
The two models' steps alternate within each repeat (so a change of machine load hits both),
and each is the median over --repeats repeats; the ratio is smplx's time over mp3d's (above
1: mp3d is faster).

    python bench/bench_body.py [--batches 1 16 64 256] [--threads 2] [--repeats 15]
        [--model PATH] [--dtype float32|float64] [--fits N]

Needs smplx (`pip install torch==2.13.0 smplx==0.1.28`: pin torch, or pip may replace it);
without it only mp3d is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mp3d._backend import backend
from mp3d.body import BUILTIN_BODY, SMPL, load_model_file

N_BETAS = 10


def import_smplx():
    """The smplx module, or None with a message saying how to install it."""
    try:
        import smplx  # optional peer, imported only here
    except ImportError:
        print(
            "smplx is not installed: timing mp3d alone. Install it with "
            "`pip install torch==2.13.0 smplx==0.1.28` for the side-by-side comparison."
        )
        return None
    return smplx


def write_smplx_model(arrays: dict[str, np.ndarray], directory: Path) -> Path:
    """Writes the model arrays as SMPL_NEUTRAL.pkl (a pickled dict, as smplx.SMPL reads)."""
    path = directory / "SMPL_NEUTRAL.pkl"
    keys = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
    with open(path, "wb") as file:
        pickle.dump({key: np.asarray(arrays[key]) for key in keys}, file, protocol=2)
    return path


def make_inputs(n_batch: int, n_joints: int, dtype: torch.dtype, seed: int) -> dict:
    """Random SMPL parameters of n_batch bodies (betas ~ N(0, 1), angles ~ N(0, 0.3^2) rad)."""
    g = torch.Generator().manual_seed(seed)
    return {
        "betas": torch.randn(n_batch, N_BETAS, generator=g, dtype=dtype),
        "body_pose": 0.3 * torch.randn(n_batch, 3 * (n_joints - 1), generator=g, dtype=dtype),
        "global_orient": 0.3 * torch.randn(n_batch, 3, generator=g, dtype=dtype),
        "transl": torch.randn(n_batch, 3, generator=g, dtype=dtype),
    }


def make_step(
    forward: Callable[..., torch.Tensor], inputs: dict, upstream: torch.Tensor
) -> Callable[[], None]:
    """One forward+backward of <forward(**inputs), upstream>, gradients to every input."""
    leaves = {name: value.detach().clone().requires_grad_() for name, value in inputs.items()}

    def step() -> None:
        (forward(**leaves) * upstream).sum().backward()
        for leaf in leaves.values():
            leaf.grad = None

    return step


def timed(step: Callable[[], None]) -> float:
    """Wall time of one call to step, seconds."""
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 16, 64, 256])
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default: 2)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=15,
        help="repeats per batch size; each repeat times every model once "
        "per inner call (default: 15)",
    )
    parser.add_argument(
        "--model", type=Path, default=BUILTIN_BODY, help="model file (default: the built-in body)"
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--fits", type=int, default=0, help="also time fit_smplify on this many one-person problems"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)

    arrays = load_model_file(args.model)
    ours = SMPL(arrays, dtype=dtype)
    smplx = import_smplx()
    peer = None
    tmp = tempfile.TemporaryDirectory()
    if smplx is not None:
        path = write_smplx_model(arrays, Path(tmp.name))
        with contextlib.redirect_stdout(io.StringIO()):  # its "only 10 shape coefficients"
            peer = smplx.SMPL(
                model_path=str(path),
                num_betas=N_BETAS,
                dtype=dtype,
                create_betas=False,
                create_body_pose=False,
                create_global_orient=False,
                create_transl=False,
            )
    print(
        f"torch {torch.__version__} | threads {torch.get_num_threads()} | kernels "
        f"{backend().source} | model {args.model.name}: {ours.n_vertices} vertices, "
        f"{ours.n_joints} joints | {args.dtype} | forward+backward, median of "
        f"{args.repeats}"
    )

    def ours_vertices(**params: torch.Tensor) -> torch.Tensor:
        return ours(**params).vertices

    def peer_vertices(**params: torch.Tensor) -> torch.Tensor:
        return peer(**params).vertices

    if peer is not None:  # the same model file must give the same bodies
        inputs = make_inputs(4, ours.n_joints, dtype, seed=123)
        with torch.no_grad():
            a = ours(**inputs)
            b = peer(**inputs)
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        vertex_gap = float((a.vertices - b.vertices).abs().max())
        joint_gap = float((a.joints - b.joints[:, : ours.n_joints]).abs().max())
        print(
            f"same inputs: max |vertex difference| {vertex_gap:.2e}, max |joint difference| "
            f"{joint_gap:.2e} (model units)"
        )
        if not (vertex_gap < tol and joint_gap < tol):
            sys.exit(f"mp3d and smplx disagree by more than {tol:g}: not timing")

    header = f"{'B':>5} {'mp3d ms':>9}"
    if peer is not None:
        header += f" {'smplx ms':>9} {'smplx/mp3d':>11}"
    print(header)
    for n_batch in args.batches:
        inputs = make_inputs(n_batch, ours.n_joints, dtype, seed=n_batch)
        g = torch.Generator().manual_seed(7)
        upstream = torch.randn(n_batch, ours.n_vertices, 3, generator=g, dtype=dtype)
        steps = {"mp3d": make_step(ours_vertices, inputs, upstream)}
        if peer is not None:
            steps["smplx"] = make_step(peer_vertices, inputs, upstream)
        # Small batches take a millisecond or so: time several calls per sample.
        inner = max(1, 64 // n_batch)
        for step in steps.values():  # warm-up
            for _ in range(3):
                step()
        samples: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.repeats):
            for name, step in steps.items():
                samples[name].append(sum(timed(step) for _ in range(inner)) / inner)
        medians = {name: statistics.median(values) for name, values in samples.items()}
        line = f"{n_batch:>5} {medians['mp3d'] * 1e3:>9.3f}"
        if peer is not None:
            line += f" {medians['smplx'] * 1e3:>9.3f} {medians['smplx'] / medians['mp3d']:>10.2f}x"
        print(line, flush=True)
    tmp.cleanup()
    if args.fits > 0:
        smplify_seconds(ours, args.fits)


def smplify_seconds(model: SMPL, n_fits: int) -> None:
    """Times fit_smplify (default config) on n_fits one-person problems, one thread."""
    from mp3d.body.evaluation import sample_bodies
    from mp3d.body.fit import fit_smplify

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = sample_bodies(
        model, n_fits, torch.Generator().manual_seed(0), pose_scale=0.5, noise_px=2.0
    )
    seconds = []
    for i in range(n_fits):
        start = time.perf_counter()
        fit_smplify(model, data.keypoints[i], data.K[i])
        seconds.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    print(
        f"fit_smplify, one person, default config, 1 thread: median "
        f"{statistics.median(seconds):.3f} s per fit over {n_fits} fits "
        f"(min {min(seconds):.3f}, max {max(seconds):.3f})"
    )


if __name__ == "__main__":
    main()
