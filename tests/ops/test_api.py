"""The public surface of mp3d.ops: the re-exported functions, one `impl: Impl` and one
`validate` argument per op, and the op families the backend knows."""

from __future__ import annotations

import inspect

import pytest

import mp3d.ops
from mp3d import _backend

OPS = [
    "render_rays",
    "render_weights",
    "hash_encode",
    "project_gaussians",
    "sh_colors",
    "rasterize_splats",
    "rasterize",
    "march_occupancy",
]


def test_reexports():
    for name in [
        *OPS,
        "lbs",
        "spherical_harmonics",
        "rasterize_reference",
        "ray_offsets",
        "set_checks",
        "checks",
        "checks_enabled",
        "FAMILIES",
    ]:
        assert name in mp3d.ops.__all__ and hasattr(mp3d.ops, name), name
    assert mp3d.ops.rasterize is mp3d.ops.gaussians.rasterize
    assert mp3d.ops.lbs is mp3d.ops.skinning.lbs
    assert set(mp3d.ops.FAMILIES) == set(_backend.FAMILY_OPS)


@pytest.mark.parametrize("name", OPS)
def test_each_op_takes_a_typed_impl_and_validate(name):
    parameters = inspect.signature(getattr(mp3d.ops, name)).parameters
    assert parameters["impl"].annotation == "Impl"
    assert parameters["impl"].default == "auto"
    assert parameters["validate"].default is None
    assert parameters["validate"].annotation == "bool | None"


def test_hash_encoding_module_impl_is_typed():
    from mp3d.encodings import HashEncoding

    assert inspect.signature(HashEncoding).parameters["impl"].annotation == "Impl"
