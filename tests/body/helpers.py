"""Test helpers for mp3d.body: random models, official-format writers and an einsum reference."""

from __future__ import annotations

import pickle
import struct
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from mp3d.body.skeleton import SMPL_PARENTS, kintree_table


def random_model(n_vertices: int = 60, n_betas: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """A random SMPL-shaped model (24 joints) with the official keys and dtypes."""
    rng = np.random.default_rng(seed)
    n_joints = len(SMPL_PARENTS)
    weights = rng.random((n_vertices, n_joints)) ** 4
    weights /= weights.sum(axis=1, keepdims=True)
    regressor = rng.random((n_joints, n_vertices)) * (rng.random((n_joints, n_vertices)) < 0.2)
    regressor[:, 0] += 1e-3  # no empty row
    regressor /= regressor.sum(axis=1, keepdims=True)
    return {
        "v_template": rng.normal(0.0, 0.5, (n_vertices, 3)),
        "shapedirs": rng.normal(0.0, 0.02, (n_vertices, 3, n_betas)),
        "posedirs": rng.normal(0.0, 0.02, (n_vertices, 3, 9 * (n_joints - 1))),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree_table(SMPL_PARENTS),
        "f": rng.integers(0, n_vertices, (2 * n_vertices, 3)).astype(np.uint32),
    }


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 `str` (BINSTRING opcodes), as official SMPL files hold them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def write_official_pkl(model: dict[str, np.ndarray], path: Path) -> Path:
    """Writes a model the way official SMPL .pkl files are: Python 2 protocol-2 pickle,
    shapedirs (and more) as chumpy objects, a scipy.sparse csc J_regressor, numpy.core and
    scipy.sparse.csc module paths. chumpy is faked in sys.modules only while pickling."""
    chumpy = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")
    ch_ops = types.ModuleType("chumpy.ch_ops")

    class Ch:  # like chumpy.ch.Ch: the array in __dict__['x'], pickled with other state
        def __init__(self, x: np.ndarray) -> None:
            self.x = x
            self._dirty_vars = set()
            self.dterms = ("x",)

        def __getstate__(self) -> dict:
            return dict(self.__dict__)

    class Plain:  # a chumpy object whose state is its __dict__, array under another name
        def __init__(self, a: np.ndarray) -> None:
            self.a = a
            self.name = "plain"

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    Plain.__module__, Plain.__qualname__ = "chumpy.ch_ops", "Plain"
    ch.Ch, ch_ops.Plain, chumpy.ch, chumpy.ch_ops = Ch, Plain, ch, ch_ops
    content = {
        "v_template": Ch(model["v_template"]),
        "shapedirs": Ch(model["shapedirs"]),
        "posedirs": model["posedirs"],
        "J_regressor": scipy.sparse.csc_matrix(model["J_regressor"]),
        "weights": Plain(model["weights"]),
        "kintree_table": model["kintree_table"],
        "f": model["f"],
        "J": model["J_regressor"] @ model["v_template"],
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    modules = {"chumpy": chumpy, "chumpy.ch": ch, "chumpy.ch_ops": ch_ops}
    sys.modules.update(modules)
    try:
        with open(path, "wb") as file:
            _Py2Pickler(file, protocol=2).dump(content)
    finally:
        for name in modules:
            del sys.modules[name]
    data = path.read_bytes()
    data = data.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    data = data.replace(b"cscipy.sparse._csc\n", b"cscipy.sparse.csc\n")
    path.write_bytes(data)
    return path


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(*v.shape[:-1], 3, 3)


def einsum_forward(
    model: dict[str, np.ndarray],
    betas: torch.Tensor,
    body_pose: torch.Tensor,
    global_orient: torch.Tensor,
    transl: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent float64 SMPL: vertices [B,V,3] and joints [B,J,3] via matrix_exp, explicit
    4x4 inverses and per-vertex blended 4x4 transforms."""

    def t(key: str) -> torch.Tensor:
        return torch.as_tensor(np.asarray(model[key], dtype=np.float64))

    betas, body_pose, global_orient, transl = (
        x.detach().double() for x in (betas, body_pose, global_orient, transl)
    )
    n_batch, n_betas = betas.shape
    table = np.asarray(model["kintree_table"])
    parents = [-1] + [int(p) for p in table[0, 1:]]
    n_joints = len(parents)
    v_shaped = t("v_template") + torch.einsum("vcs,bs->bvc", t("shapedirs")[..., :n_betas], betas)
    rest = torch.einsum("jv,bvc->bjc", t("J_regressor"), v_shaped)
    axis_angle = torch.cat([global_orient, body_pose], dim=1).view(n_batch, n_joints, 3)
    rotations = torch.linalg.matrix_exp(_skew(axis_angle))
    features = (rotations[:, 1:] - torch.eye(3, dtype=torch.float64)).reshape(n_batch, -1)
    v_posed = v_shaped + torch.einsum("vcp,bp->bvc", t("posedirs"), features)
    world = []
    for j, p in enumerate(parents):
        local = torch.eye(4, dtype=torch.float64).repeat(n_batch, 1, 1)
        local[:, :3, :3] = rotations[:, j]
        local[:, :3, 3] = rest[:, j] - (rest[:, p] if p >= 0 else 0.0)
        world.append(local if p < 0 else world[p] @ local)
    world = torch.stack(world, dim=1)
    rest_frames = torch.eye(4, dtype=torch.float64).repeat(n_batch, n_joints, 1, 1)
    rest_frames[..., :3, 3] = rest
    skin = world @ torch.linalg.inv(rest_frames)
    per_vertex = torch.einsum("vj,bjmn->bvmn", t("weights"), skin)
    homogeneous = torch.cat([v_posed, torch.ones_like(v_posed[..., :1])], dim=-1)
    vertices = torch.einsum("bvmn,bvn->bvm", per_vertex, homogeneous)[..., :3]
    return vertices + transl[:, None], world[..., :3, 3] + transl[:, None]


def random_params(
    n_batch: int, n_betas: int, seed: int = 0, dtype=torch.float32, scale: float = 0.5
) -> dict[str, torch.Tensor]:
    """Random betas, body_pose, global_orient and transl for a 24-joint model."""
    g = torch.Generator().manual_seed(seed)
    return {
        "betas": torch.randn(n_batch, n_betas, generator=g).to(dtype),
        "body_pose": (scale * torch.randn(n_batch, 69, generator=g)).to(dtype),
        "global_orient": torch.randn(n_batch, 3, generator=g).to(dtype),
        "transl": torch.randn(n_batch, 3, generator=g).to(dtype),
    }
