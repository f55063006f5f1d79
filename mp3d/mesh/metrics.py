"""Surface reconstruction metrics with the definitions of the Occupancy Networks evaluation.

Both surfaces are sampled (points and face normals), then matched by nearest neighbours
(scipy's KD-tree), in the meshes' own units; papers in the field normalise meshes into the
unit cube first, and `tau` (default 0.01) is then 1% of the cube's side.

- accuracy: mean distance from each predicted point to the nearest ground-truth point;
- completeness: mean distance from each ground-truth point to the nearest predicted point;
- Chamfer-L1: the mean of the two; Chamfer-L2: the mean of their squared counterparts;
- normal consistency: the mean over both directions of |n . n_nearest| (orientation-free);
- precision / recall: the fraction of predicted / ground-truth points within `tau` of the
  other surface; F-score: their harmonic mean;
- volumetric IoU: |A and B| / |A or B| of two occupancy labellings of the same points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "SurfaceMetrics",
    "mesh_metrics",
    "point_cloud_metrics",
    "sample_surface",
    "volumetric_iou",
]

DEFAULT_POINTS = 100_000  # the Occupancy Networks evaluation's sample count
DEFAULT_TAU = 0.01


@dataclass(frozen=True)
class SurfaceMetrics:
    """Distances in the input's units; normal consistency, precision, recall, F-score in
    [0, 1]; `tau` the F-score threshold they were computed at."""

    accuracy: float
    completeness: float
    chamfer_l1: float
    chamfer_l2: float
    normal_consistency: float
    precision: float
    recall: float
    fscore: float
    tau: float

    def to_dict(self) -> dict[str, float]:
        """The metrics as a plain dict (for JSON)."""
        return asdict(self)


def _points(name: str, value, normals: bool = False) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        what = "normals" if normals else "points"
        raise ValueError(f"{name} must be {what} of shape [N>0, 3], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(
            f"{name} must be finite, got {int((~np.isfinite(array)).sum())} NaN or infinite entries"
        )
    return array


def _unit(normals: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(lengths, 1e-12)


def point_cloud_metrics(
    pred_points,
    gt_points,
    pred_normals=None,
    gt_normals=None,
    tau: float = DEFAULT_TAU,
) -> SurfaceMetrics:
    """Metrics between a predicted and a ground-truth surface sample: points [N,3] and [M,3],
    optionally with normals of the same shapes (else normal consistency is NaN)."""
    pred, gt = _points("pred_points", pred_points), _points("gt_points", gt_points)
    if not (isinstance(tau, (int, float)) and np.isfinite(tau) and tau > 0):
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    to_gt, gt_index = cKDTree(gt).query(pred)  # accuracy direction
    to_pred, pred_index = cKDTree(pred).query(gt)  # completeness direction
    consistency = float("nan")
    if pred_normals is not None and gt_normals is not None:
        pred_n = _unit(_points("pred_normals", pred_normals, normals=True))
        gt_n = _unit(_points("gt_normals", gt_normals, normals=True))
        for name, normals, points in (("pred_normals", pred_n, pred), ("gt_normals", gt_n, gt)):
            if normals.shape != points.shape:
                raise ValueError(
                    f"{name} must have the shape of its points "
                    f"{list(points.shape)}, got {list(normals.shape)}"
                )
        accuracy_normals = np.abs((pred_n * gt_n[gt_index]).sum(axis=1)).mean()
        completeness_normals = np.abs((gt_n * pred_n[pred_index]).sum(axis=1)).mean()
        consistency = float(0.5 * (accuracy_normals + completeness_normals))
    accuracy, completeness = float(to_gt.mean()), float(to_pred.mean())
    precision, recall = float((to_gt < tau).mean()), float((to_pred < tau).mean())
    fscore = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return SurfaceMetrics(
        accuracy=accuracy,
        completeness=completeness,
        chamfer_l1=0.5 * (accuracy + completeness),
        chamfer_l2=float(0.5 * ((to_gt**2).mean() + (to_pred**2).mean())),
        normal_consistency=consistency,
        precision=precision,
        recall=recall,
        fscore=float(fscore),
        tau=float(tau),
    )


def sample_surface(mesh, n: int = DEFAULT_POINTS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points [n,3] uniformly on a trimesh.Trimesh's surface (by area) and the normals
    [n,3] of the faces they lie on; the same seed gives the same points."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0 or not float(getattr(mesh, "area", 0.0)) > 0:
        raise ValueError("mesh must be a trimesh.Trimesh with at least one face of non-zero area")
    import trimesh

    points, face_index = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[face_index])


def mesh_metrics(
    pred_mesh, gt_mesh, n_points: int = DEFAULT_POINTS, tau: float = DEFAULT_TAU, seed: int = 0
) -> SurfaceMetrics:
    """Metrics between two trimesh.Trimesh surfaces, each sampled at n_points points."""
    pred_points, pred_normals = sample_surface(pred_mesh, n_points, seed)
    gt_points, gt_normals = sample_surface(gt_mesh, n_points, seed + 1)
    return point_cloud_metrics(pred_points, gt_points, pred_normals, gt_normals, tau)


def volumetric_iou(occupancy_a, occupancy_b) -> float:
    """|A and B| / |A or B| of two boolean occupancy labellings [N] of the same points (1.0
    when both are empty everywhere)."""
    a, b = np.asarray(occupancy_a), np.asarray(occupancy_b)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(
            f"occupancies must have one non-empty shape, got {list(a.shape)} and {list(b.shape)}"
        )
    if a.dtype != bool or b.dtype != bool:
        raise ValueError(f"occupancies must be boolean, got {a.dtype} and {b.dtype}")
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
