"""Backend selection: the built extension, the JIT build and the torch fallback."""

from __future__ import annotations

import os
import subprocess
import sys
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
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=ROOT, timeout=600)


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
    result = _run(code, {"MP3D_NO_JIT": "1"})
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
    result = _run(code, {"TORCH_EXTENSIONS_DIR": str(tmp_path), "MP3D_FORCE_CPU": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "jit [0.6321, 0.2325]"
