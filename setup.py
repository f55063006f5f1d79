"""Builds mp3d and its extension mp3d._C from csrc/.

The C++ CPU kernels are always built; the CUDA kernels too when torch has CUDA and a CUDA
toolkit is found, unless MP3D_FORCE_CPU=1. Build with `pip install --no-build-isolation`,
so the extension is compiled against the torch already installed.
"""

import glob
import os

from setuptools import setup

try:
    import torch  # noqa: F401
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
except ImportError as error:  # pragma: no cover - shown to people building wrongly
    raise SystemExit(
        "mp3d builds against the torch already installed: install torch first "
        "(pip install torch==2.13.0 on a CPU machine), then "
        "pip install --no-build-isolation -e ."
    ) from error

ROOT = os.path.dirname(os.path.abspath(__file__))


def with_cuda() -> bool:
    """Whether to build the CUDA kernels as well."""
    if os.environ.get("MP3D_FORCE_CPU", "0") == "1":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


def extension():
    """The mp3d._C extension: the binding file plus every kernel family's sources."""
    sources = ["csrc/mp3d.cpp"] + sorted(glob.glob("csrc/*/*_cpu.cpp", root_dir=ROOT))
    # at::parallel_for is inlined into the extension: without OpenMP it runs serially.
    cxx = ["-O3", "-g0", "-fopenmp"]
    link = ["-fopenmp"]
    if not with_cuda():
        return CppExtension("mp3d._C", sources, extra_compile_args={"cxx": cxx},
                            extra_link_args=link)
    sources += sorted(glob.glob("csrc/*/*_cuda.cu", root_dir=ROOT))
    nvcc = ["-O3", "-lineinfo"]
    return CUDAExtension(
        "mp3d._C",
        sources,
        define_macros=[("MP3D_WITH_CUDA", None)],
        extra_compile_args={"cxx": cxx, "nvcc": nvcc},
        extra_link_args=link,
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
