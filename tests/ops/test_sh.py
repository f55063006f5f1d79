"""Spherical harmonics (mp3d.ops.sh): orthonormality, known values, bad input; mp3d.ops
stands on its own (it does not import mp3d.encodings)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from mp3d.ops.sh import MAX_DEGREE, n_coefficients, spherical_harmonics


def test_basis_is_orthonormal_on_the_sphere():
    """Monte Carlo over 400k uniform directions: the Gram matrix is 4 pi times identity
    (the 3DGS constants are the orthonormal real SH, up to sign)."""
    g = torch.Generator().manual_seed(0)
    d = torch.nn.functional.normalize(
        torch.randn(400_000, 3, generator=g, dtype=torch.float64), dim=-1
    )
    Y = spherical_harmonics(d, MAX_DEGREE)
    gram = 4 * math.pi * (Y.T @ Y) / d.shape[0]
    assert Y.shape == (d.shape[0], n_coefficients(MAX_DEGREE)) == (d.shape[0], 25)
    torch.testing.assert_close(gram, torch.eye(25, dtype=torch.float64), atol=0.03, rtol=0)


def test_known_values_along_the_axes():
    z = torch.tensor([[0.0, 0.0, 1.0]])
    x = torch.tensor([[1.0, 0.0, 0.0]])
    assert spherical_harmonics(z, 0)[0].tolist() == pytest.approx([0.28209479177387814])
    assert spherical_harmonics(z, 1)[0, 1:].tolist() == pytest.approx([0.0, 0.4886025, 0.0])
    assert spherical_harmonics(x, 1)[0, 1:].tolist() == pytest.approx([0.0, 0.0, -0.4886025])


def test_batch_shapes_and_second_derivatives():
    d = torch.nn.functional.normalize(torch.randn(2, 5, 3, dtype=torch.float64), dim=-1)
    assert spherical_harmonics(d, 2).shape == (2, 5, 9)
    d = d.reshape(-1, 3)[:3].clone().requires_grad_()
    assert torch.autograd.gradgradcheck(lambda v: spherical_harmonics(v, 3), (d,))


@pytest.mark.parametrize("degree", [-1, 5, 2.0, True, None])
def test_bad_degree(degree):
    with pytest.raises(ValueError, match="degree must be an int in 0..4"):
        spherical_harmonics(torch.ones(1, 3), degree)


def test_bad_directions():
    with pytest.raises(ValueError, match=r"d must be a tensor of shape \[..., 3\], got \[4, 2\]"):
        spherical_harmonics(torch.ones(4, 2), 1)


def test_ops_do_not_import_encodings():
    code = "import sys, mp3d.ops; print('mp3d.encodings' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_encodings_reexports_the_op():
    from mp3d import encodings

    assert encodings.spherical_harmonics is spherical_harmonics
