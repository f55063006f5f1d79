"""Parametric human bodies: the SMPL model, model-file loading, the built-in body, export,
fitting to 2D keypoints (SMPLify, learned gradient descent)."""

from mp3d.body.export import save_animation, save_body_mesh
from mp3d.body.fit import FitResult, SMPLifyConfig, fit_smplify
from mp3d.body.keypoints import load_keypoints
from mp3d.body.lgd import fit_lgd, train_lgd
from mp3d.body.model_file import MODEL_KEYS, load_model_file, validate_model
from mp3d.body.skeleton import (
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    kintree_table,
    parents_from_kintree,
)
from mp3d.body.smpl import BUILTIN_BODY, SMPL, SMPLOutput

__all__ = [
    "BUILTIN_BODY",
    "MODEL_KEYS",
    "SMPL",
    "SMPL_JOINT_NAMES",
    "SMPL_PARENTS",
    "FitResult",
    "SMPLOutput",
    "SMPLifyConfig",
    "fit_lgd",
    "fit_smplify",
    "kintree_table",
    "load_keypoints",
    "load_model_file",
    "parents_from_kintree",
    "save_animation",
    "save_body_mesh",
    "train_lgd",
    "validate_model",
]
