"""Encodings: documented shapes, values at known points, and float64 gradcheck."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d.encodings import FourierFeatures, HashEncoding, PositionalEncoding, SphericalHarmonics


def test_positional_encoding_shape_and_values():
    pe = PositionalEncoding(3, n_frequencies=4)
    x = torch.tensor([[0.25, 0.5, -1.0]])
    out = pe(x)
    assert pe.out_dim == 3 * (1 + 2 * 4) and out.shape == (1, pe.out_dim)
    torch.testing.assert_close(out[0, :3], x[0])
    # sin(2^1 pi * 0.25) = sin(pi/2) = 1 is the 4th sine (k=1, coordinate 0).
    assert out[0, 3 + 3].item() == pytest.approx(1.0, abs=1e-6)
    assert PositionalEncoding(2, 3, include_input=False)(torch.rand(5, 7, 2)).shape == (5, 7, 12)


def test_fourier_features_shape_and_bandwidth():
    ff = FourierFeatures(2, n_features=64, sigma=10.0, seed=1)
    out = ff(torch.rand(9, 2))
    assert out.shape == (9, 128) and ff.out_dim == 128
    assert float(out.abs().max()) <= 1.0
    assert float(ff.B.std()) == pytest.approx(10.0, rel=0.25)
    torch.testing.assert_close(out[:, :64] ** 2 + out[:, 64:] ** 2, torch.ones(9, 64))
    assert torch.equal(FourierFeatures(2, 64, 10.0, seed=1).B, ff.B)


def test_spherical_harmonics_orthonormal():
    d = torch.nn.functional.normalize(
        torch.randn(200000, 3, generator=torch.Generator().manual_seed(0)), dim=-1
    )
    Y = SphericalHarmonics(4)(d)
    assert Y.shape == (200000, 25)
    gram = Y.T @ Y * (4 * math.pi / d.shape[0])
    torch.testing.assert_close(gram, torch.eye(25), atol=0.03, rtol=0)


def test_hash_encoding_layout():
    enc = HashEncoding(
        n_levels=4, n_features=2, log2_table_size=10, base_resolution=4, finest_resolution=32
    )
    assert enc.resolutions.tolist() == [4, 8, 16, 32]
    # Levels whose (res+1)^3 grid fits in 2^10 rows are dense; the others get 2^10 rows.
    sizes = (enc.offsets[1:] - enc.offsets[:-1]).tolist()
    assert sizes == [125, 729, 1024, 1024]
    assert enc(torch.rand(7, 3)).shape == (7, 8) and enc.out_dim == 8
    with pytest.raises(ValueError, match="finest_resolution must be >= base_resolution"):
        HashEncoding(base_resolution=16, finest_resolution=8)


def test_hash_encoding_interpolates_dense_level_exactly():
    """On a dense level, a grid vertex reads its own row; a cell centre averages 8 rows."""
    enc = HashEncoding(
        n_levels=1,
        n_features=1,
        log2_table_size=10,
        base_resolution=2,
        finest_resolution=2,
        impl="torch",
    )
    with torch.no_grad():
        enc.embeddings.copy_(torch.arange(27, dtype=torch.float32)[:, None])
    vertex = torch.tensor([[0.5, 1.0, 0.0]])  # grid vertex (1, 2, 0) -> row 1 + 3*2 = 7
    assert enc(vertex).item() == pytest.approx(7.0)
    centre = torch.tensor([[0.25, 0.25, 0.25]])  # cell (0,0,0): rows 0,1,3,4,9,10,12,13
    assert enc(centre).item() == pytest.approx((0 + 1 + 3 + 4 + 9 + 10 + 12 + 13) / 8)


@pytest.mark.parametrize(
    "module", [PositionalEncoding(3, 3), FourierFeatures(3, 4, 2.0), SphericalHarmonics(3)]
)
def test_encodings_gradcheck(module):
    x = torch.rand(6, 3, dtype=torch.float64, requires_grad=True)
    if isinstance(module, SphericalHarmonics):
        x = torch.nn.functional.normalize(x.detach(), dim=-1).requires_grad_()
    module = module.double()
    assert torch.autograd.gradcheck(module, (x,))


def test_hash_encoding_module_gradcheck():
    enc = HashEncoding(
        n_levels=3,
        n_features=2,
        log2_table_size=8,
        base_resolution=2,
        finest_resolution=16,
        impl="torch",
    ).double()
    with torch.no_grad():
        enc.embeddings.normal_()
    points = (torch.rand(5, 3, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    table = enc.embeddings.detach().clone().requires_grad_()

    def fn(p, e):
        return torch.func.functional_call(enc, {"embeddings": e}, (p,))

    assert torch.autograd.gradcheck(fn, (points, table))
