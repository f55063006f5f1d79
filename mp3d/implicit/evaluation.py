"""Scoring a learned field against a shape's ground truth, as the Occupancy Networks
evaluation does: volumetric IoU from occupancy at the shape's uniform query points, and the
surface metrics (Chamfer-L1, normal consistency, F-score) of the field's MISE mesh.

A field is any callable points [N,3] (unit cube) -> values [N]; `level` and `inside` say
where its surface is and which side is inside: occupancy logits are inside above their
level (logit(0.2) in ONet's evaluation), signed distances below 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from mp3d.implicit.sampling import PADDING

__all__ = ["field_mesh", "mean_metrics", "shape_metrics"]

Field = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def _values(field: Field, points: np.ndarray, device=None, chunk: int = 65536) -> np.ndarray:
    tensor = torch.as_tensor(points, dtype=torch.float32, device=device)
    return torch.cat(
        [field(tensor[i : i + chunk]).float().cpu() for i in range(0, len(tensor), chunk)]
    ).numpy()


def field_mesh(
    field: Field,
    level: float,
    inside: str,
    initial: int = 32,
    upsampling_steps: int = 2,
    device=None,
):
    """The field's surface {field = level} in the padded unit cube, by MISE, as a
    trimesh.Trimesh (empty, with no faces, when the field has no surface there)."""
    from mp3d.mesh.marching_cubes import NoSurfaceError
    from mp3d.mesh.mise import extract_mesh_mise

    half = 0.5 * (1.0 + PADDING)
    try:
        return extract_mesh_mise(
            field, [-half] * 3 + [half] * 3, level, initial, upsampling_steps, inside, device=device
        )
    except NoSurfaceError:
        import trimesh

        return trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))


def shape_metrics(
    field: Field,
    shape,
    level: float,
    inside: str,
    upsampling_steps: int = 2,
    n_points: int = 30_000,
    device=None,
) -> dict[str, float]:
    """IoU (at the shape's uniform points), Chamfer-L1, normal consistency and F-score@1%
    of `field` against a ShapeSamples; surface metrics are NaN when the field has no
    surface (and IoU then counts it as all outside or all inside)."""
    from mp3d.mesh.metrics import mesh_metrics, volumetric_iou

    if inside not in ("above", "below"):
        raise ValueError(f"inside must be 'above' or 'below', got {inside!r}")
    values = _values(field, shape.points[shape.uniform], device)
    predicted = values > level if inside == "above" else values < level
    scores = {"iou": volumetric_iou(predicted, shape.occupancy[shape.uniform])}
    mesh = field_mesh(field, level, inside, upsampling_steps=upsampling_steps, device=device)
    if len(mesh.faces) == 0:
        nan = float("nan")
        return {**scores, "chamfer_l1": nan, "normal_consistency": nan, "fscore": nan}
    surface = mesh_metrics(mesh, shape.mesh, n_points)
    return {
        **scores,
        "chamfer_l1": surface.chamfer_l1,
        "normal_consistency": surface.normal_consistency,
        "fscore": surface.fscore,
    }


def mean_metrics(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over shapes (NaNs, shapes without a surface, left out)."""
    if not rows:
        raise ValueError("no metrics to average")
    means = {}
    for key in rows[0]:
        values = [row[key] for row in rows if not np.isnan(row[key])]
        means[key] = float(np.mean(values)) if values else float("nan")
    return means
