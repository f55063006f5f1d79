"""Builds mp3d and its extension mp3d._C from csrc/.

The C++ CPU kernels are always built; the CUDA kernels too when torch has CUDA and a CUDA
toolkit is found, unless MP3D_FORCE_CPU=1. Build with `pip install --no-build-isolation`,
so the extension is compiled against the torch already installed. Sources and flags come
from csrc/build_config.py, which the JIT build in mp3d/_backend.py reads too.
"""

import os
import runpy

from setuptools import setup

try:
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as error:  # pragma: no cover - shown to people building wrongly
    raise SystemExit(
        "mp3d builds against the torch already installed: install torch first "
        "(pip install torch==2.13.0 on a CPU machine), then "
        "pip install --no-build-isolation -e ."
    ) from error

ROOT = os.path.dirname(os.path.abspath(__file__))
config = runpy.run_path(os.path.join(ROOT, "csrc", "build_config.py"))


def extension():
    """The mp3d._C extension: the binding file plus every kernel family's sources."""
    with_cuda = config["want_cuda"](torch.version.cuda, CUDA_HOME)
    sources = config["sources"](with_cuda)
    cxx, link = list(config["CXX_FLAGS"]), list(config["LINK_FLAGS"])
    if not with_cuda:
        return CppExtension(
            "mp3d._C", sources, extra_compile_args={"cxx": cxx}, extra_link_args=link
        )
    return CUDAExtension(
        "mp3d._C",
        sources,
        define_macros=[(config["CUDA_DEFINE"], None)],
        extra_compile_args={"cxx": cxx, "nvcc": list(config["NVCC_FLAGS"])},
        extra_link_args=link,
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
