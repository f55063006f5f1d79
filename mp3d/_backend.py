"""Finds the compiled kernels: the built mp3d._C, else a cached JIT build of csrc/, else none.

Every op in mp3d.ops takes ``impl="auto" | "cpp" | "cuda" | "torch"``; `resolve_impl`
turns that choice and the device of the inputs into the path that will run.
"""

from __future__ import annotations

import functools
import glob
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

Impl = Literal["auto", "cpp", "cuda", "torch"]
IMPLS: tuple[Impl, ...] = ("auto", "cpp", "cuda", "torch")
CSRC = Path(__file__).resolve().parent.parent / "csrc"


@dataclass(frozen=True)
class Backend:
    """What was loaded: where the kernels came from and whether they include CUDA."""

    source: str  # "built", "jit" or "none"
    has_cpp: bool
    has_cuda: bool
    detail: str = ""


def _loaded(source: str, detail: str = "") -> Backend:
    has_cuda = bool(torch.ops.mp3d.built_with_cuda()) and torch.cuda.is_available()
    return Backend(source=source, has_cpp=True, has_cuda=has_cuda, detail=detail)


def _jit_build() -> None:
    """Compiles csrc/ with torch's JIT loader into torch's extension cache (once)."""
    from torch.utils import cpp_extension

    sources = [str(CSRC / "mp3d.cpp")] + sorted(glob.glob(str(CSRC / "*" / "*_cpu.cpp")))
    cflags = ["-O3", "-g0", "-fopenmp"]  # OpenMP: see setup.py
    kwargs = {}
    if torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None \
            and os.environ.get("MP3D_FORCE_CPU", "0") != "1":
        sources += sorted(glob.glob(str(CSRC / "*" / "*_cuda.cu")))
        cflags.append("-DMP3D_WITH_CUDA")
        kwargs["extra_cuda_cflags"] = ["-O3", "-DMP3D_WITH_CUDA"]
    cpp_extension.load(
        name="mp3d_jit_C",
        sources=sources,
        extra_cflags=cflags,
        extra_ldflags=["-fopenmp"],
        is_python_module=False,
        verbose=os.environ.get("MP3D_VERBOSE_BUILD", "0") == "1",
        **kwargs,
    )


@functools.lru_cache(maxsize=None)
def backend() -> Backend:
    """Loads the kernels once; warns once if only the torch reference is available."""
    try:
        from mp3d import _C  # noqa: F401  (registers torch.ops.mp3d.*)

        return _loaded("built", "mp3d._C")
    except ImportError as error:
        built_error = str(error)
    if os.environ.get("MP3D_NO_JIT", "0") != "1" and CSRC.is_dir():
        try:
            _jit_build()
            return _loaded("jit", f"JIT build of {CSRC}")
        except Exception as error:  # compiler missing or build failed: fall back, loudly
            built_error = f"{built_error}; JIT build failed: {error}"
    warnings.warn(
        "mp3d: compiled kernels unavailable, using the pure-PyTorch reference "
        f"(slow). Reinstall with `pip install --no-build-isolation -e .`. ({built_error})",
        RuntimeWarning,
        stacklevel=2,
    )
    return Backend(source="none", has_cpp=False, has_cuda=False, detail=built_error)


def available_impls() -> list[str]:
    """The implementations that can run here, besides "auto"."""
    b = backend()
    return [name for name, ok in (("cpp", b.has_cpp), ("cuda", b.has_cuda), ("torch", True)) if ok]


def resolve_impl(impl: str, device: torch.device) -> str:
    """Picks the implementation for tensors on `device`; raises ValueError if it cannot run."""
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "torch":
        return "torch"
    b = backend()
    on_cuda = device.type == "cuda"
    if impl == "auto":
        if on_cuda:
            return "cuda" if b.has_cuda else "torch"
        return "cpp" if b.has_cpp and device.type == "cpu" else "torch"
    if impl == "cpp":
        if not b.has_cpp:
            raise ValueError(f"impl='cpp' is not available: mp3d._C could not be loaded ({b.detail})")
        if device.type != "cpu":
            raise ValueError(f"impl='cpp' runs on CPU tensors, got tensors on {device}")
        return "cpp"
    if not b.has_cuda:
        why = "torch has no CUDA device" if not torch.cuda.is_available() else \
            "mp3d._C was built without CUDA kernels"
        raise ValueError(f"impl='cuda' is not available: {why}")
    if not on_cuda:
        raise ValueError(f"impl='cuda' runs on CUDA tensors, got tensors on {device}")
    return "cuda"
