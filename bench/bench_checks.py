"""Per-call cost of the ops' input checks: host reads (each a synchronisation on a GPU) and
wall time with the value checks on and off, at small sizes where the checks matter most.

    python bench/bench_checks.py [--repeats 200] [--device cpu|cuda]

    python bench/bench_checks.py --before c28632d   # also the ops as they were then

For each op it prints the host reads of one call (item/tolist/float/int/bool/nonzero seen
from Python, counted with a TorchFunctionMode; each is a synchronisation on a GPU), the
median time of a call with value checks on and off (validate=False), and their difference:
the checks' cost per call. With --before REV the op's module as it was at REV is loaded
beside today's (same kernels) and timed in the same rounds: its time minus today's
checks-off time is the old checks' cost. Timings are medians of interleaved calls, but
other jobs on the cores still add noise: run it alone.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import statistics
import subprocess
import time
import types
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

READS = frozenset(
    {"item", "tolist", "__float__", "__int__", "__bool__", "__index__", "nonzero", "numpy"}
)


class _Reads(TorchFunctionMode):
    """Counts Python-visible reads of tensor values (as mp3d.ops._validation.HostReads,
    repeated here so this script also measures checkouts that lack it)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in READS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def _gaussian_scene(n: int, size: int, device: str, sh_degree: int | None) -> tuple:
    g = torch.Generator().manual_seed(0)
    means = torch.randn(n, 3, generator=g) * 0.6 + torch.tensor([0.0, 0.0, 4.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.1 + 0.02
    opacities = torch.rand(n, generator=g) * 0.8 + 0.1
    if sh_degree is None:
        colors = torch.rand(n, 3, generator=g)
    else:
        colors = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.2
    viewmat = torch.eye(4)
    K = torch.tensor([[size * 1.2, 0.0, size / 2], [0.0, size * 1.2, size / 2], [0, 0, 1.0]])
    tensors = [t.to(device) for t in (means, quats, scales, opacities, colors, viewmat, K)]
    return (*tensors, size, size)


def _packed(n_rays: int, per_ray: int, device: str) -> tuple:
    g = torch.Generator().manual_seed(0)
    ray_indices = torch.arange(n_rays).repeat_interleave(per_ray)
    t = torch.linspace(2.0, 6.0, per_ray + 1)
    t_starts, t_ends = t[:-1].repeat(n_rays), t[1:].repeat(n_rays)
    sigmas = torch.rand(n_rays * per_ray, generator=g) * 2.0
    rgbs = torch.rand(n_rays * per_ray, 3, generator=g)
    tensors = [x.to(device) for x in (sigmas, rgbs, t_starts, t_ends, ray_indices)]
    return (*tensors, n_rays)


def _hash_inputs(n: int, device: str) -> tuple:
    g = torch.Generator().manual_seed(0)
    resolutions = torch.tensor([16, 32, 64, 128])
    sizes = [min(2**14, (r + 1) ** 3) for r in resolutions.tolist()]
    offsets = torch.tensor([0, *torch.tensor(sizes).cumsum(0).tolist()])
    embeddings = torch.rand(int(offsets[-1]), 2, generator=g).to(device)
    points = torch.rand(n, 3, generator=g).to(device)
    return points, embeddings, resolutions, offsets


def _module_at(revision: str, family: str):
    """mp3d/ops/<family>.py as it was at git `revision`, loaded beside today's package (it
    imports today's mp3d._backend, _validation and kernels), so both check paths can be
    timed in one process."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{revision}:mp3d/ops/{family}.py"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"mp3d.ops._{family}_at_{revision}")
    module.__package__ = "mp3d.ops"
    exec(compile(source, f"{revision}:mp3d/ops/{family}.py", "exec"), module.__dict__)
    return module


def _cases(device: str) -> list[tuple[str, str, tuple, dict]]:
    """(label, family, inputs, kwargs) per measured call."""
    cases = []
    for n, size in ((64, 32), (1000, 64)):
        cases.append(
            (
                f"rasterize N={n} {size}x{size} RGB",
                "gaussians",
                _gaussian_scene(n, size, device, None),
                {"background": 0.5},
            )
        )
    cases.append(
        (
            "rasterize N=1000 64x64 SH3",
            "gaussians",
            _gaussian_scene(1000, 64, device, 3),
            {"background": 0.5},
        )
    )
    cases.append(
        (
            "render_rays 256 rays x 32",
            "volume_rendering",
            _packed(256, 32, device),
            {"background": 1.0},
        )
    )
    cases.append(("hash_encode 4096 points", "hash_encoding", _hash_inputs(4096, device), {}))
    return cases


OPS = {"gaussians": "rasterize", "volume_rendering": "render_rays", "hash_encoding": "hash_encode"}


def _interleaved_ms(fns: dict, repeats: int, device: str) -> dict:
    """Median ms per call of each function, timed in alternating rounds so that load from
    other jobs falls on all of them alike."""
    for fn in fns.values():
        for _ in range(5):
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def _reads(fn) -> int:
    with _Reads() as reads:
        fn()
    return reads.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--before",
        default=None,
        metavar="REV",
        help="also time the ops as they were at git revision REV",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import importlib

    import mp3d

    print(
        f"mp3d at {Path(mp3d.__file__).parent}, device {args.device}, {args.threads} "
        f"thread(s), median of {args.repeats} interleaved calls"
        + (f"; 'before' = the ops at {args.before}" if args.before else "")
    )
    header = f"{'op':<30} {'reads':>5} {'on ms':>7} {'off ms':>7} {'checks us':>9}"
    if args.before:
        header += f" | {'before reads':>12} {'before ms':>9} {'before checks us':>16}"
    print(header)
    for label, family, inputs, kwargs in _cases(args.device):
        op = getattr(importlib.import_module(f"mp3d.ops.{family}"), OPS[family])
        fns = {}
        with torch.no_grad():
            if "validate" in inspect.signature(op).parameters:
                fns["on"] = functools.partial(op, *inputs, **kwargs, validate=True)
                fns["off"] = functools.partial(op, *inputs, **kwargs, validate=False)
            else:
                fns["on"] = functools.partial(op, *inputs, **kwargs)
            if args.before:
                old = getattr(_module_at(args.before, family), OPS[family])
                fns["before"] = functools.partial(old, *inputs, **kwargs)
            reads = {name: _reads(fn) for name, fn in fns.items()}
            ms = _interleaved_ms(fns, args.repeats, args.device)
        off = ms.get("off")
        row = f"{label:<30} {reads['on']:>5} {ms['on']:>7.3f} " + (
            f"{off:>7.3f} {(ms['on'] - off) * 1e3:>9.0f}"
            if off is not None
            else f"{'-':>7} {'-':>9}"
        )
        if args.before:
            row += f" | {reads['before']:>12} {ms['before']:>9.3f} " + (
                f"{(ms['before'] - off) * 1e3:>16.0f}" if off is not None else f"{'-':>16}"
            )
        print(row)


if __name__ == "__main__":
    main()
