"""Parametric human bodies: the SMPL model, model-file loading, the built-in body, export."""

from mp3d.body.export import save_animation, save_body_mesh
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
    "SMPLOutput",
    "kintree_table",
    "load_model_file",
    "parents_from_kintree",
    "save_animation",
    "save_body_mesh",
    "validate_model",
]
