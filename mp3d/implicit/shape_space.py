"""One interface to the learned shape spaces (occupancy networks and DeepSDF), as the
command line uses them: a cached training set in a run folder, training, scoring on shapes
held out of training, and reconstruction of a mesh from a point cloud.

Conventions: shapes live in the unit cube (mp3d.implicit.sampling); a point cloud in its
own coordinates is put into the unit cube of its bounding box and the mesh is mapped back.
Held-out scoring follows each paper's protocol: an occupancy network sees a noisy cloud of
its `cloud_points` surface points (ONet: 300, noise 0.005); DeepSDF infers the code from the
shape's SDF samples (its near-surface and uniform points).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mp3d.implicit.evaluation import field_mesh, shape_metrics
from mp3d.implicit.sampling import Normalisation

__all__ = [
    "KINDS",
    "UNSEEN_SEED_START",
    "ShapeSpace",
    "shape_space",
    "space_of_checkpoint",
    "prepared_shape_set",
    "reconstruct_mesh",
    "score_model",
]

UNSEEN_SEED_START = 10_000  # procedural seeds from here on are never used for training
SHAPE_SET_NAME = "shapes.npz"
SHAPE_SET_OPTIONS = "shapes.json"


@dataclass(frozen=True)
class ShapeSpace:
    """A learned shape space: its name, config class, trainer, loader and level set."""

    name: str
    format_name: str
    config_class: type
    train: Any  # (shapes, config, out_dir, device, progress, fresh) -> model
    load: Any  # (path, device) -> model
    level: float
    inside: str  # "above" (occupancy logits) or "below" (signed distance)

    def field_of_cloud(self, model, cloud: np.ndarray, normals=None, seed: int = 0):
        """The field (points [N,3] -> values [N], unit cube) of a shape seen as a cloud."""
        if self.name == "onet":
            from mp3d.implicit.onet import reconstruct_onet

            return reconstruct_onet(model, cloud, seed=seed)
        from mp3d.implicit.deepsdf import infer_code_from_cloud

        return model.field(infer_code_from_cloud(model, cloud, normals, seed=seed))

    def field_of_shape(self, model, shape, seed: int = 0):
        """The field of a ShapeSamples by the paper's protocol (module docstring)."""
        if self.name == "onet":
            rng = np.random.default_rng(seed)
            index = rng.choice(len(shape.surface), model.cloud_points)
            noise = rng.normal(0.0, 0.005, size=(len(index), 3))
            return self.field_of_cloud(model, shape.surface[index] + noise, seed=seed)
        from mp3d.implicit.deepsdf import infer_code

        return model.field(infer_code(model, shape.points, shape.sdf, seed=seed))


def _spaces() -> dict[str, ShapeSpace]:
    from mp3d.implicit import deepsdf, onet

    return {
        "onet": ShapeSpace(
            "onet",
            onet.FORMAT,
            onet.ONetConfig,
            onet.train_onet,
            onet.load_onet,
            onet.ONET_LEVEL,
            onet.ONET_INSIDE,
        ),
        "deepsdf": ShapeSpace(
            "deepsdf",
            deepsdf.FORMAT,
            deepsdf.DeepSDFConfig,
            deepsdf.train_deepsdf,
            deepsdf.load_deepsdf,
            deepsdf.DEEPSDF_LEVEL,
            deepsdf.DEEPSDF_INSIDE,
        ),
    }


KINDS = ("onet", "deepsdf")


def shape_space(name: str) -> ShapeSpace:
    """The ShapeSpace called `name` ("onet" or "deepsdf")."""
    if name not in KINDS:
        raise ValueError(f"model must be one of {', '.join(KINDS)}, got {name!r}")
    return _spaces()[name]


def space_of_checkpoint(path: str | Path) -> tuple[ShapeSpace, Path]:
    """(the ShapeSpace, the checkpoint file) of a checkpoint file or of a run folder holding
    one; ValueError naming the file if it is not one of a shape space."""
    from mp3d.io import checkpoint_format
    from mp3d.training import CHECKPOINT_NAME

    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    found = checkpoint_format(path)
    for candidate in _spaces().values():
        if candidate.format_name == found:
            return candidate, path
    formats = ", ".join(k.format_name for k in _spaces().values())
    raise ValueError(f"{path}: a {found!r} checkpoint, not one of a shape space ({formats})")


def prepared_shape_set(
    out_dir: str | Path,
    meshes: Sequence[tuple[str, object]],
    copies: int,
    procedural: int,
    seed: int = 0,
    progress: bool = True,
    **sample_options,
):
    """The training shapes of a run folder: loaded from its shapes.npz when that was built
    with the same options (shapes.json says which), else built by build_shape_set from
    `copies` posed copies of each mesh and procedural seeds 0..procedural-1, and saved."""
    from mp3d.implicit.shape_set import build_shape_set, load_shape_set, save_shape_set
    from mp3d.io import atomic_path
    from mp3d.training import check_int

    check_int("procedural", procedural, 0, UNSEEN_SEED_START)
    folder = Path(out_dir)
    options = {
        "meshes": [name for name, _ in meshes],
        "copies": copies,
        "procedural": procedural,
        "seed": seed,
        **sample_options,
    }
    cache, record = folder / SHAPE_SET_NAME, folder / SHAPE_SET_OPTIONS
    if cache.is_file() and record.is_file():
        try:
            same = json.loads(record.read_text()) == options
        except (OSError, json.JSONDecodeError):
            same = False
        if same:
            return load_shape_set(cache)
    shapes = build_shape_set(
        meshes, copies, range(procedural), seed=seed, progress=progress, **sample_options
    )
    save_shape_set(shapes, cache)
    with atomic_path(record) as temporary:
        temporary.write_text(json.dumps(options, indent=1) + "\n")
    return shapes


def score_model(
    space: ShapeSpace, model, shapes: Sequence, upsampling_steps: int = 2, device=None
) -> list[dict[str, Any]]:
    """One row per shape: its name and shape_metrics (IoU, Chamfer-L1, normal
    consistency, F-score) of the model's field for it, by the paper's protocol."""
    rows = []
    for index, shape in enumerate(shapes):
        field = space.field_of_shape(model, shape, seed=index)
        scores = shape_metrics(
            field, shape, space.level, space.inside, upsampling_steps, device=device
        )
        rows.append({"shape": shape.name, **scores})
    return rows


def reconstruct_mesh(
    space: ShapeSpace,
    model,
    points,
    normals=None,
    upsampling_steps: int = 3,
    seed: int = 0,
    device=None,
):
    """The mesh (trimesh.Trimesh, in the points' own coordinates) of the shape seen as a
    point cloud [N,3] (normals [N,3] used by DeepSDF when given), by MISE; ValueError if
    the field has no surface in the cloud's box."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or len(points) == 0:
        raise ValueError(f"points must have shape [N>0, 3], got {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ValueError("points must be finite")
    normalisation = Normalisation.of_points(points)
    field = space.field_of_cloud(model, normalisation.to_unit(points), normals, seed)
    mesh = field_mesh(
        field, space.level, space.inside, upsampling_steps=upsampling_steps, device=device
    )
    if len(mesh.faces) == 0:
        raise ValueError(
            f"the {space.name} model finds no surface for these points (its field does not "
            f"cross level {space.level:g} in their box)"
        )
    mesh.vertices = normalisation.to_world(mesh.vertices)
    return mesh
