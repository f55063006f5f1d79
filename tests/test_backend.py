"""Backend selection: the built extension, the JIT build and the torch fallback."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from mp3d import _backend

ROOT = Path(__file__).resolve().parents[1]


def test_resolve_impl_rules():
    cpu = torch.device("cpu")
    assert _backend.resolve_impl("torch", cpu) == "torch"
    expected_auto = "cpp" if _backend.backend().has_cpp else "torch"
    assert _backend.resolve_impl("auto", cpu) == expected_auto
    with pytest.raises(ValueError, match="impl must be one of"):
        _backend.resolve_impl("fastest", cpu)
    if _backend.backend().has_cpp:
        with pytest.raises(ValueError, match="impl='cpp' runs on CPU tensors"):
            _backend.resolve_impl("cpp", torch.device("meta"))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="impl='cuda' is not available"):
            _backend.resolve_impl("cuda", cpu)


def _run(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=ROOT,
        timeout=600,
    )


BLOCK_BUILT = "import sys; sys.modules['mp3d._C'] = None\n"


def test_falls_back_to_torch_with_one_warning():
    code = BLOCK_BUILT + (
        "import warnings, torch\n"
        "from mp3d import _backend\n"
        "from mp3d.ops.volume_rendering import render_rays\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    out = render_rays(torch.ones(2), torch.ones(2, 3), torch.zeros(2), torch.ones(2),\n"
        "                      torch.tensor([0, 1]), 2)\n"
        "    render_rays(torch.ones(2), torch.ones(2, 3), torch.zeros(2), torch.ones(2),\n"
        "                torch.tensor([0, 1]), 2)\n"
        "print(_backend.backend().source, len(caught), round(float(out[1][0]), 4))\n"
        "try:\n"
        "    _backend.resolve_impl('cpp', torch.device('cpu'))\n"
        "except ValueError as e:\n"
        "    print('error:', e)\n"
    )
    result = _run(code, {"MP3D_NO_JIT": "1", "MP3D_REQUIRE_KERNELS": "0"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "none 1 0.6321"  # 1 - exp(-1)
    assert "impl='cpp' is not available" in lines[1]


@pytest.mark.slow
def test_jit_build_when_extension_missing(tmp_path):
    """Without the built module, csrc/ is compiled by torch's JIT loader and used."""
    code = BLOCK_BUILT + (
        "import torch\n"
        "from mp3d import _backend\n"
        "from mp3d.ops.volume_rendering import render_weights\n"
        "w = render_weights(torch.ones(2), torch.zeros(2), torch.ones(2), torch.tensor([0, 0]),\n"
        "                   1, impl='cpp')\n"
        "print(_backend.backend().source, [round(float(x), 4) for x in w])\n"
    )
    result = _run(
        code, {"TORCH_EXTENSIONS_DIR": str(tmp_path), "MP3D_FORCE_CPU": "1", "MP3D_NO_JIT": "0"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "jit [0.6321, 0.2325]"


def test_every_family_lists_its_registered_ops():
    from mp3d.ops import FAMILIES

    assert set(_backend.FAMILY_OPS) == set(FAMILIES)
    if _backend.backend().has_cpp:
        for family, ops in _backend.FAMILY_OPS.items():
            for op in ops:
                assert hasattr(torch.ops.mp3d, op), (family, op)


@pytest.fixture
def fresh_kernel_status():
    _backend.kernel_missing.cache_clear()
    yield
    _backend.kernel_missing.cache_clear()


def test_doctor_reports_each_family_on_its_own(monkeypatch, capsys, fresh_kernel_status):
    """A build whose hash-encoding CPU kernels are missing: doctor says torch for that family
    only, and why."""
    if not _backend.backend().has_cpp:
        pytest.skip("needs mp3d._C")
    from mp3d import cli

    real = _backend._registered
    monkeypatch.setattr(
        _backend,
        "_registered",
        lambda op, key: False if op.startswith("hash_encode") else real(op, key),
    )
    assert cli.doctor(None) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()[1:]
        for line in out.splitlines()
        if line[:1].strip() and line.split()[0] in _backend.FAMILY_OPS
    }
    assert rows["hash_encoding"][0] == "torch"
    assert rows["volume_rendering"][0] == rows["gaussians"][0] == rows["skinning"][0] == "cpp"
    assert "hash_encoding on CPU: mp3d._C has no CPU kernel for hash_encode_fwd" in out
    cuda = "cuda" if torch.cuda.is_available() and _backend.backend().built_with_cuda else "torch"
    assert all(row[1] == cuda for name, row in rows.items() if name != "hash_encoding")
    assert _backend.resolve_impl("auto", torch.device("cpu"), "hash_encoding") == "torch"
    assert _backend.resolve_impl("auto", torch.device("cpu"), "gaussians") == "cpp"
    with pytest.raises(ValueError, match="no CPU kernel for hash_encode_fwd"):
        _backend.resolve_impl("cpp", torch.device("cpu"), "hash_encoding")


def test_family_impls_on_this_machine():
    for family in _backend.FAMILY_OPS:
        impls = _backend.family_impls(family)
        assert impls["cpu"] == ("cpp" if _backend.backend().has_cpp else "torch")
        if family in _backend.CPU_ONLY_FAMILIES:
            assert impls["cuda"] == "torch"
            assert impls["cuda_why"] == f"{family} has a C++ CPU kernel only"
        elif not torch.cuda.is_available():
            assert impls["cuda"] == "torch"
            assert impls["cuda_why"] == "torch has no CUDA device"
    with pytest.raises(ValueError, match="family must be one of"):
        _backend.family_impls("splines")


@pytest.mark.skipif(
    torch.cuda.is_available() and _backend.backend().has_cuda,
    reason="the CUDA kernels are here: nothing falls back",
)
def test_cuda_tensors_on_a_build_without_cuda_kernels_warn_once_per_family(monkeypatch):
    """resolve_impl only reads the device type, so a CUDA device object stands in for
    CUDA tensors on a machine without one."""
    monkeypatch.setattr(_backend, "_warned_cuda_fallback", set())
    cuda = torch.device("cuda")
    with pytest.warns(RuntimeWarning, match="volume_rendering on CUDA tensors runs the pure"):
        assert _backend.resolve_impl("auto", cuda, "volume_rendering") == "torch"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _backend.resolve_impl("auto", cuda, "volume_rendering") == "torch"
        assert _backend.resolve_impl("torch", cuda, "gaussians") == "torch"
    with pytest.warns(RuntimeWarning, match="gaussians on CUDA tensors"):
        assert _backend.resolve_impl("auto", cuda, "gaussians") == "torch"


def test_required_kernels_missing_is_an_error():
    """MP3D_REQUIRE_KERNELS=1 (exported by .ci/run): no kernels is an error, not a warning."""
    code = BLOCK_BUILT + (
        "import torch\n"
        "from mp3d import _backend\n"
        "from mp3d.ops.volume_rendering import render_weights\n"
        "try:\n"
        "    render_weights(torch.ones(2), torch.zeros(2), torch.ones(2),\n"
        "                   torch.tensor([0, 0]), 1)\n"
        "except _backend.KernelsMissingError as e:\n"
        "    print('error:', e)\n"
    )
    result = _run(code, {"MP3D_NO_JIT": "1", "MP3D_REQUIRE_KERNELS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("error: MP3D_REQUIRE_KERNELS=1 but the compiled kernels")


def test_setup_and_jit_build_from_one_config():
    config = _backend.build_config()
    cpu = config["sources"](False)
    assert cpu[0] == "csrc/mp3d.cpp"
    # One folder per kernel family; forward kinematics lives in the skinning folder.
    assert {Path(s).parent.name for s in cpu[1:]} == set(_backend.FAMILY_OPS) - {"kinematics"}
    assert all((ROOT / s).is_file() for s in config["sources"](True))
    assert {s for s in config["sources"](True) if s.endswith(".cu")}
    assert "-lineinfo" in config["NVCC_FLAGS"] and "-fopenmp" in config["CXX_FLAGS"]
    setup_text = (ROOT / "setup.py").read_text()
    backend_text = (ROOT / "mp3d" / "_backend.py").read_text()
    for text in (setup_text, backend_text):  # neither keeps a list of its own
        assert "build_config.py" in text and "glob(" not in text and '"-O3"' not in text
