"""Finds the compiled kernels: the built mp3d._C, else a cached JIT build of csrc/, else none.

Every op in mp3d.ops takes ``impl="auto" | "cpp" | "cuda" | "torch"``; `resolve_impl`
turns that choice, the op family and the device of the inputs into the path that will run,
and `family_impls` says which path each family takes on CPU and on CUDA tensors.

Environment: MP3D_NO_JIT=1 skips the JIT build; MP3D_REQUIRE_KERNELS=1 turns a missing
kernel (no mp3d._C, a family's ops not registered, or no CUDA kernels next to a CUDA
device) into an error instead of a fallback with a warning, so CI cannot pass on the
torch reference alone.
"""

from __future__ import annotations

import functools
import os
import runpy
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

Impl = Literal["auto", "cpp", "cuda", "torch"]
IMPLS: tuple[Impl, ...] = ("auto", "cpp", "cuda", "torch")
CSRC = Path(__file__).resolve().parent.parent / "csrc"

# The torch.ops.mp3d operators each op family's kernels need (declared in csrc/mp3d.cpp).
FAMILY_OPS: dict[str, tuple[str, ...]] = {
    "volume_rendering": ("volume_render_fwd", "volume_render_bwd"),
    "hash_encoding": ("hash_encode_fwd", "hash_encode_bwd", "hash_encode_bwd_bwd"),
    "gaussians": (
        "gaussians_project_fwd",
        "gaussians_project_bwd",
        "gaussians_sh_fwd",
        "gaussians_sh_bwd",
        "gaussians_tile_bin",
        "gaussians_rasterize_fwd",
        "gaussians_rasterize_bwd",
    ),
    "skinning": ("lbs_fwd", "lbs_bwd"),
    "kinematics": ("kinematics_fwd", "kinematics_bwd"),
    "ray_marching": ("march_occupancy",),
    "ssim": ("ssim_fwd",),
}
# Families with a C++ CPU kernel only: their CUDA tensors run the torch reference by design.
CPU_ONLY_FAMILIES = frozenset({"kinematics", "ray_marching", "ssim"})


class KernelsMissingError(RuntimeError):
    """A kernel is missing while MP3D_REQUIRE_KERNELS=1."""


@dataclass(frozen=True)
class Backend:
    """What was loaded: where the kernels came from and whether they include CUDA."""

    source: str  # "built", "jit" or "none"
    has_cpp: bool
    has_cuda: bool  # the build has CUDA kernels and torch sees a CUDA device
    detail: str = ""
    built_with_cuda: bool = False


def kernels_required() -> bool:
    """Whether MP3D_REQUIRE_KERNELS=1: a missing kernel is an error, not a fallback."""
    return os.environ.get("MP3D_REQUIRE_KERNELS", "0") == "1"


def _loaded(source: str, detail: str = "") -> Backend:
    with_cuda = bool(torch.ops.mp3d.built_with_cuda())
    return Backend(
        source=source,
        has_cpp=True,
        has_cuda=with_cuda and torch.cuda.is_available(),
        detail=detail,
        built_with_cuda=with_cuda,
    )


def build_config() -> dict:
    """csrc/build_config.py's names: the sources and flags setup.py builds with."""
    return runpy.run_path(str(CSRC / "build_config.py"))


def _jit_build() -> None:
    """Compiles csrc/ with torch's JIT loader into torch's extension cache (once), from the
    sources and flags setup.py uses."""
    from torch.utils import cpp_extension

    config = build_config()
    with_cuda = config["want_cuda"](torch.version.cuda, cpp_extension.CUDA_HOME)
    root = CSRC.parent
    sources = [str(root / s) for s in config["sources"](with_cuda)]
    cflags = list(config["CXX_FLAGS"])
    kwargs = {}
    if with_cuda:
        define = f"-D{config['CUDA_DEFINE']}"
        cflags.append(define)
        kwargs["extra_cuda_cflags"] = [*config["NVCC_FLAGS"], define]
    cpp_extension.load(
        name="mp3d_jit_C",
        sources=sources,
        extra_cflags=cflags,
        extra_ldflags=list(config["LINK_FLAGS"]),
        is_python_module=False,
        verbose=os.environ.get("MP3D_VERBOSE_BUILD", "0") == "1",
        **kwargs,
    )


def _check_required(b: Backend) -> None:
    """With MP3D_REQUIRE_KERNELS=1, raises unless every family has its CPU kernels, and its
    CUDA kernels too when torch sees a CUDA device (and MP3D_FORCE_CPU is not 1)."""
    if not kernels_required():
        return
    if not b.has_cpp:
        raise KernelsMissingError(
            f"MP3D_REQUIRE_KERNELS=1 but the compiled kernels could not be loaded ({b.detail})"
        )
    want_cuda = torch.cuda.is_available() and os.environ.get("MP3D_FORCE_CPU", "0") != "1"
    for family in FAMILY_OPS:
        missing = [op for op in FAMILY_OPS[family] if not _registered(op, "CPU")]
        if want_cuda and family not in CPU_ONLY_FAMILIES:
            missing += [f"{op} (CUDA)" for op in FAMILY_OPS[family] if not _registered(op, "CUDA")]
        if missing:
            raise KernelsMissingError(
                f"MP3D_REQUIRE_KERNELS=1 but {family} lacks kernels: {', '.join(missing)}"
            )


@functools.cache
def backend() -> Backend:
    """Loads the kernels once; warns once if only the torch reference is available (raises
    KernelsMissingError instead with MP3D_REQUIRE_KERNELS=1)."""
    try:
        from mp3d import _C  # noqa: F401  (registers torch.ops.mp3d.*)

        loaded = _loaded("built", "mp3d._C")
        _check_required(loaded)
        return loaded
    except ImportError as error:
        built_error = str(error)
    if os.environ.get("MP3D_NO_JIT", "0") != "1" and CSRC.is_dir():
        try:
            _jit_build()
            loaded = _loaded("jit", f"JIT build of {CSRC}")
        except Exception as error:  # compiler missing or build failed: fall back, loudly
            built_error = f"{built_error}; JIT build failed: {error}"
        else:
            _check_required(loaded)
            return loaded
    none = Backend(source="none", has_cpp=False, has_cuda=False, detail=built_error)
    _check_required(none)
    warnings.warn(
        "mp3d: compiled kernels unavailable, using the pure-PyTorch reference "
        f"(slow). Reinstall with `pip install --no-build-isolation -e .`. ({built_error})",
        RuntimeWarning,
        stacklevel=2,
    )
    return none


def _registered(op: str, dispatch_key: str) -> bool:
    """Whether torch.ops.mp3d.<op> has a kernel for dispatch_key ("CPU" or "CUDA")."""
    has_kernel = getattr(torch._C, "_dispatch_has_kernel_for_dispatch_key", None)
    if has_kernel is None:  # a torch without the dispatcher query: trust the declaration
        return hasattr(torch.ops.mp3d, op)
    try:
        return bool(has_kernel(f"mp3d::{op}", dispatch_key))
    except RuntimeError:  # the operator is not declared at all (an older mp3d._C)
        return False


def _family_ops(family: str) -> tuple[str, ...]:
    if family not in FAMILY_OPS:
        raise ValueError(f"family must be one of {tuple(FAMILY_OPS)}, got {family!r}")
    return FAMILY_OPS[family]


@functools.cache
def kernel_missing(family: str | None, device_type: str) -> str | None:
    """Why the compiled kernels cannot run `family` (None: any family) on `device_type`
    ("cpu" or "cuda") tensors, or None if they can (cached: call kernel_missing.cache_clear()
    after loading more kernels)."""
    ops = FAMILY_OPS[family] if family is not None else ()
    b = backend()
    if not b.has_cpp:
        return f"mp3d._C could not be loaded ({b.detail})"
    if device_type == "cpu":
        missing = [op for op in ops if not _registered(op, "CPU")]
        return f"mp3d._C has no CPU kernel for {', '.join(missing)}" if missing else None
    if device_type != "cuda":
        return f"no kernels for {device_type} tensors"
    if family in CPU_ONLY_FAMILIES:
        return f"{family} has a C++ CPU kernel only"
    if not torch.cuda.is_available():
        return "torch has no CUDA device"
    if not b.built_with_cuda:
        return "mp3d._C was built without CUDA kernels"
    missing = [op for op in ops if not _registered(op, "CUDA")]
    return f"mp3d._C has no CUDA kernel for {', '.join(missing)}" if missing else None


def family_impls(family: str) -> dict[str, str]:
    """The implementation impl="auto" runs for `family` on CPU and on CUDA tensors, e.g.
    {"cpu": "cpp", "cuda": "torch"}, and why a kernel is not used ({"cpu_why": ...,
    "cuda_why": ...}, present only then)."""
    _family_ops(family)
    result: dict[str, str] = {}
    for device_type, kernel in (("cpu", "cpp"), ("cuda", "cuda")):
        why = kernel_missing(family, device_type)
        result[device_type] = kernel if why is None else "torch"
        if why is not None:
            result[f"{device_type}_why"] = why
    return result


def available_impls(family: str | None = None) -> list[str]:
    """The implementations that can run here for `family` (None: the whole build), besides
    "auto"."""
    if family is not None:
        _family_ops(family)
    ok = {
        "cpp": kernel_missing(family, "cpu") is None,
        "cuda": kernel_missing(family, "cuda") is None,
    }
    return [name for name in ("cpp", "cuda") if ok[name]] + ["torch"]


_warned_cuda_fallback: set[str] = set()


def _warn_cuda_fallback(family: str | None, why: str) -> None:
    """Warns once per process and family that CUDA tensors run on the torch reference."""
    key = family or "ops"
    if key in _warned_cuda_fallback:
        return
    _warned_cuda_fallback.add(key)
    warnings.warn(
        f"mp3d: {key} on CUDA tensors runs the pure-PyTorch reference (slow): {why}. "
        "Rebuild on a machine with nvcc and a CUDA build of torch "
        "(pip install --no-build-isolation -e .), or pass impl='torch' to silence this.",
        RuntimeWarning,
        stacklevel=3,
    )


def resolve_impl(impl: str, device: torch.device, family: str | None = None) -> str:
    """Picks the implementation of `family` (None: any) for tensors on `device`.

    "auto" takes the compiled kernel for the device when it is there, else the torch
    reference (warning once for CUDA tensors; backend() warns for a build with no kernels
    at all). "cpp" and "cuda" raise ValueError if they cannot run.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if family is not None:
        _family_ops(family)
    if impl == "torch":
        return "torch"
    on_cuda = device.type == "cuda"
    if impl == "auto":
        if on_cuda:
            why = kernel_missing(family, "cuda")
            if why is None:
                return "cuda"
            if family not in CPU_ONLY_FAMILIES:
                _warn_cuda_fallback(family, why)
            return "torch"
        if device.type == "cpu" and kernel_missing(family, "cpu") is None:
            return "cpp"
        return "torch"
    if impl == "cpp":
        why = kernel_missing(family, "cpu")
        if why is not None and not backend().has_cpp:
            raise ValueError(f"impl='cpp' is not available: {why}")
        if device.type != "cpu":
            raise ValueError(f"impl='cpp' runs on CPU tensors, got tensors on {device}")
        if why is not None:
            raise ValueError(f"impl='cpp' is not available: {why}")
        return "cpp"
    why = kernel_missing(family, "cuda")
    if why is not None:
        raise ValueError(f"impl='cuda' is not available: {why}")
    if not on_cuda:
        raise ValueError(f"impl='cuda' runs on CUDA tensors, got tensors on {device}")
    return "cuda"
