"""How mp3d._C is compiled: the one list of sources and flags that setup.py and the JIT
loader (mp3d/_backend.py) both read.

A plain module with no imports beyond the standard library, loaded by path (runpy), so
setup.py can read it before the mp3d package is built or importable.
"""

from __future__ import annotations

import os
from pathlib import Path

CSRC = Path(__file__).resolve().parent
ROOT = CSRC.parent

# at::parallel_for is inlined into the extension: without OpenMP it runs serially.
# -g0 drops the debug info Python's build flags add (a 15 MB .so becomes 0.2 MB).
CXX_FLAGS = ["-O3", "-g0", "-fopenmp"]
# -lineinfo keeps source lines in the CUDA binary for profilers and sanitizers.
NVCC_FLAGS = ["-O3", "-lineinfo"]
LINK_FLAGS = ["-fopenmp"]
# Defined for C++ and CUDA translation units alike when the CUDA kernels are built.
CUDA_DEFINE = "MP3D_WITH_CUDA"


def want_cuda(torch_cuda_version: str | None, cuda_home: str | None) -> bool:
    """Whether to build the CUDA kernels: torch has CUDA, a toolkit is found, and
    MP3D_FORCE_CPU is not 1."""
    if os.environ.get("MP3D_FORCE_CPU", "0") == "1":
        return False
    return torch_cuda_version is not None and cuda_home is not None


def sources(with_cuda: bool) -> list[str]:
    """Source files relative to the repository root: the binding file, every family's
    *_cpu.cpp, and with_cuda its *_cuda.cu, each group sorted."""
    cpu = sorted(p.relative_to(ROOT).as_posix() for p in CSRC.glob("*/*_cpu.cpp"))
    cuda = sorted(p.relative_to(ROOT).as_posix() for p in CSRC.glob("*/*_cuda.cu"))
    return ["csrc/mp3d.cpp", *cpu, *(cuda if with_cuda else [])]
