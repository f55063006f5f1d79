"""PLY files in the 3DGS layout: round trip, exact header, channel-major f_rest, errors."""

from __future__ import annotations

import numpy as np
import plyfile
import pytest
import torch

from mp3d.splat import load_ply, save_ply

DEGREE_0_NAMES = [
    "x",
    "y",
    "z",
    "nx",
    "ny",
    "nz",
    "f_dc_0",
    "f_dc_1",
    "f_dc_2",
    "opacity",
    "scale_0",
    "scale_1",
    "scale_2",
    "rot_0",
    "rot_1",
    "rot_2",
    "rot_3",
]


def _expected_names(degree: int) -> list[str]:
    rest = [f"f_rest_{i}" for i in range(3 * ((degree + 1) ** 2 - 1))]
    return DEGREE_0_NAMES[:9] + rest + DEGREE_0_NAMES[9:]


def _gaussians(n: int = 5, degree: int = 3, dtype=torch.float32) -> dict:
    g = torch.Generator().manual_seed(degree)
    return {
        "means": torch.randn(n, 3, generator=g, dtype=dtype),
        "quats": torch.randn(n, 4, generator=g, dtype=dtype),
        "log_scales": torch.randn(n, 3, generator=g, dtype=dtype) - 3.0,
        "opacity_logits": torch.randn(n, generator=g, dtype=dtype),
        "sh": torch.randn(n, (degree + 1) ** 2, 3, generator=g, dtype=dtype),
    }


def _header_property_names(path) -> list[str]:
    header = path.read_bytes().split(b"end_header\n")[0].decode("ascii").splitlines()
    assert header[:3] == ["ply", "format binary_little_endian 1.0", "element vertex 5"]
    assert all(line.startswith("property float ") for line in header[3:])
    return [line.split()[-1] for line in header[3:]]


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_round_trip(tmp_path, degree):
    gaussians = _gaussians(degree=degree, dtype=torch.float64)
    path = save_ply(tmp_path / "scene.ply", **gaussians)
    loaded = load_ply(path)
    assert set(loaded) == set(gaussians)
    for name, value in gaussians.items():
        assert loaded[name].dtype == torch.float32
        assert torch.equal(loaded[name], value.float()), name
    assert [p.name for p in tmp_path.iterdir()] == ["scene.ply"]  # no temporary left behind


@pytest.mark.parametrize("degree", [0, 3])
def test_header_has_exactly_the_3dgs_properties(tmp_path, degree):
    path = save_ply(tmp_path / "scene.ply", **_gaussians(degree=degree))
    assert _header_property_names(path) == _expected_names(degree)
    vertex = plyfile.PlyData.read(str(path))["vertex"]
    assert [p.name for p in vertex.properties] == _expected_names(degree)


def test_f_rest_is_channel_major(tmp_path):
    gaussians = _gaussians(n=5, degree=2)
    k = torch.arange(9, dtype=torch.float32)
    channel = torch.arange(3, dtype=torch.float32)
    gaussians["sh"] = (100 * channel[None, :] + k[:, None]).expand(5, 9, 3).clone()
    vertex = plyfile.PlyData.read(str(save_ply(tmp_path / "s.ply", **gaussians)))["vertex"]
    rest = [float(vertex[f"f_rest_{i}"][0]) for i in range(24)]
    assert rest == [100.0 * c + k for c in range(3) for k in range(1, 9)]
    assert [float(vertex[f"f_dc_{c}"][0]) for c in range(3)] == [0.0, 100.0, 200.0]


def test_missing_property_names_the_file(tmp_path):
    names = [n for n in _expected_names(0) if n != "opacity"]
    vertices = np.zeros(2, dtype=[(n, "<f4") for n in names])
    path = tmp_path / "broken.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(vertices, "vertex")]).write(str(path))
    with pytest.raises(
        ValueError, match=r"broken\.ply lacks the 3DGS vertex properties \['opacity'\]"
    ):
        load_ply(path)


def test_not_a_ply_names_the_file(tmp_path):
    path = tmp_path / "notes.ply"
    path.write_text("hello\n")
    with pytest.raises(ValueError, match=r"notes\.ply is not a readable PLY file"):
        load_ply(path)


def test_bad_shapes_name_the_argument(tmp_path):
    gaussians = _gaussians()
    with pytest.raises(ValueError, match=r"quats must have shape \[\*, 4\], got \[5, 3\]"):
        save_ply(tmp_path / "a.ply", **{**gaussians, "quats": torch.zeros(5, 3)})
    with pytest.raises(ValueError, match="opacity_logits must have 5 entries"):
        save_ply(tmp_path / "a.ply", **{**gaussians, "opacity_logits": torch.zeros(4)})
    with pytest.raises(ValueError, match=r"sh must have K = \(degree\+1\)\^2"):
        save_ply(tmp_path / "a.ply", **{**gaussians, "sh": torch.zeros(5, 5, 3)})
    assert not (tmp_path / "a.ply").exists()


@pytest.mark.parametrize(
    "name, column, value, message",
    [
        (
            "means",
            1,
            float("nan"),
            r"property 'y' must be finite, got nan at vertex 3 "
            r"\(1 of 5 vertices are not finite\)",
        ),
        ("log_scales", 0, float("inf"), "property 'scale_0' must be finite, got inf at vertex 3"),
        ("sh", 0, float("-inf"), "property 'f_dc_0' must be finite"),
    ],
)
def test_non_finite_values_name_the_file(tmp_path, name, column, value, message):
    gaussians = _gaussians(degree=1)
    gaussians[name][3].view(-1)[column] = value
    path = save_ply(tmp_path / "bad.ply", **gaussians)
    with pytest.raises(ValueError, match=rf"bad\.ply: {message}"):
        load_ply(path)


def test_zero_quaternion_names_the_file(tmp_path):
    gaussians = _gaussians(degree=0)
    gaussians["quats"][[1, 4]] = 0.0
    path = save_ply(tmp_path / "flat.ply", **gaussians)
    with pytest.raises(
        ValueError,
        match=r"flat\.ply: quaternion rot_0..3 must be non-zero, "
        r"got 0 at vertex 1 \(2 of 5 vertices\)",
    ):
        load_ply(path)
