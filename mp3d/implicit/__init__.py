"""Implicit surfaces: ground truth from meshes (occupancy, signed distance, samples), the
networks that learn them from 3D data (IGR fitted to a point cloud; the learned shape
spaces of occupancy networks and DeepSDF) and from posed images (DVR surface rendering and
NeuS volume rendering), and their scoring against ground truth."""

from mp3d.implicit.deepsdf import DeepSDFConfig, DeepSDFModel, load_deepsdf, train_deepsdf
from mp3d.implicit.dvr import (
    DVRConfig,
    DVRModel,
    dvr_mesh,
    evaluate_dvr,
    fit_dvr_scene,
    load_dvr,
    train_dvr,
)
from mp3d.implicit.evaluation import field_mesh, mean_metrics, shape_metrics
from mp3d.implicit.igr import IGRConfig, IGRField, fit_igr, sdf_mesh
from mp3d.implicit.onet import OccupancyNetwork, ONetConfig, load_onet, train_onet
from mp3d.implicit.sampling import (
    Normalisation,
    near_surface_points,
    normalise_mesh,
    occupancy,
    signed_distance,
    surface_points,
    uniform_points,
)
from mp3d.implicit.shape_set import ShapeSamples, build_shape_set, load_shape_set
from mp3d.implicit.shapes import procedural_shape

__all__ = [
    "DVRConfig",
    "DVRModel",
    "DeepSDFConfig",
    "DeepSDFModel",
    "IGRConfig",
    "IGRField",
    "Normalisation",
    "ONetConfig",
    "OccupancyNetwork",
    "ShapeSamples",
    "build_shape_set",
    "dvr_mesh",
    "evaluate_dvr",
    "field_mesh",
    "fit_dvr_scene",
    "fit_igr",
    "load_deepsdf",
    "load_dvr",
    "load_onet",
    "load_shape_set",
    "mean_metrics",
    "near_surface_points",
    "normalise_mesh",
    "occupancy",
    "procedural_shape",
    "sdf_mesh",
    "shape_metrics",
    "signed_distance",
    "surface_points",
    "train_deepsdf",
    "train_dvr",
    "train_onet",
    "uniform_points",
]
