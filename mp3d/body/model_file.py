"""Reads SMPL-family model files: the official .pkl as distributed, and .npz with the same keys.

Official .pkl files were written by Python 2 with some arrays wrapped in chumpy objects
(`chumpy.ch.Ch`) and the joint regressor as a scipy.sparse matrix. chumpy does not import on
current numpy, so the unpickler here maps every chumpy class to a stand-in that only keeps
its pickled state, and the array is taken from that state. Unpickling is restricted to the
classes a model file needs (numpy arrays, scipy.sparse matrices, chumpy stand-ins and a few
builtins); anything else is refused, so a model file cannot run code while it is read.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mp3d.body.skeleton import parents_from_kintree

__all__ = ["MODEL_KEYS", "load_model_file", "validate_model"]

MODEL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
SUFFIXES = (".npz", ".pkl")
# How far a row of skinning weights may sum from 1 (mp3d.ops.skinning's own tolerance).
WEIGHT_SUM_TOLERANCE = 1e-4

# Plain classes and functions a model file's pickle may name (bytes in Python 3 protocol-2
# pickles come through _codecs.encode).
_ALLOWED = {
    ("builtins", name)
    for name in (
        "object",
        "set",
        "frozenset",
        "complex",
        "slice",
        "bytearray",
        "list",
        "dict",
        "tuple",
        "int",
        "float",
        "str",
        "bytes",
        "bool",
        "range",
    )
} | {
    ("copyreg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
}
# What pickled numpy arrays reference, in numpy 1 (numpy.core) and numpy 2 (numpy._core).
_NUMPY_NAMES = {
    "numpy": {"ndarray", "dtype"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
}


# ----------------------------------------------------------------------------- chumpy stand-ins


class ChumpyStandIn:
    """What a pickled chumpy object becomes: its pickled constructor arguments and state."""

    chumpy_class = "chumpy"

    def __new__(cls, *args: Any, **kwargs: Any) -> ChumpyStandIn:
        obj = super().__new__(cls)
        obj.__dict__.update(pickle_args=args, pickle_state=None)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.__dict__["pickle_state"] = state


_STAND_INS: dict[str, type[ChumpyStandIn]] = {}


def _stand_in(module: str, name: str) -> type[ChumpyStandIn]:
    """One stand-in class per chumpy class name (e.g. chumpy.ch.Ch)."""
    qualified = f"{module}.{name}"
    if qualified not in _STAND_INS:
        _STAND_INS[qualified] = type(name, (ChumpyStandIn,), {"chumpy_class": qualified})
    return _STAND_INS[qualified]


def _is_sparse(value: Any) -> bool:
    import scipy.sparse

    return scipy.sparse.issparse(value)


def _is_array_like(value: Any) -> bool:
    return isinstance(value, (np.ndarray, ChumpyStandIn)) or _is_sparse(value)


def _chumpy_array(key: str, obj: ChumpyStandIn) -> np.ndarray:
    """The array a chumpy stand-in holds: its state's 'x', else the one array in its state."""
    state = obj.pickle_state
    if (
        isinstance(state, tuple)
        and len(state) == 2
        and all(s is None or isinstance(s, dict) for s in state)
    ):
        state = {**(state[0] or {}), **(state[1] or {})}  # (dict state, slot state)
    if _is_array_like(state):
        return _to_array(key, state)
    if isinstance(state, dict):
        if "x" in state and state["x"] is not None:
            return _to_array(key, state["x"])
        found = [value for value in state.values() if _is_array_like(value)]
    else:
        found = []
    if not found:
        found = [value for value in obj.pickle_args if _is_array_like(value)]
    if len(found) != 1:
        raise ValueError(
            f"{key}: cannot tell which array the pickled {obj.chumpy_class} object holds "
            f"(found {len(found)} arrays in its state)"
        )
    return _to_array(key, found[0])


def _to_array(key: str, value: Any) -> np.ndarray:
    """A numpy array from what a model file stores: arrays, chumpy stand-ins, sparse matrices."""
    if isinstance(value, ChumpyStandIn):
        return _chumpy_array(key, value)
    if _is_sparse(value):
        return np.asarray(value.toarray())
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 0:
        return _to_array(key, value.item())
    array = np.asarray(value)
    if array.dtype == object:
        raise ValueError(f"{key}: expected a numeric array, got an array of Python objects")
    return array


# ----------------------------------------------------------------------------- unpickling


class _ModelUnpickler(pickle.Unpickler):
    """Unpickles only what model files hold; chumpy classes become stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (__builtin__.set, copy_reg._reconstructor) -> Python 3 ones.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(module, name)
        if module.startswith("scipy.sparse"):
            import scipy.sparse

            cls = getattr(scipy.sparse, name, None)
            if isinstance(cls, type) and (
                issubclass(cls, scipy.sparse.spmatrix) or issubclass(cls, scipy.sparse.sparray)
            ):
                return cls
        elif module.replace("numpy._core.", "numpy.core.") in _NUMPY_NAMES:
            if name in _NUMPY_NAMES[module.replace("numpy._core.", "numpy.core.")]:
                return _numpy_attribute(module, name)
        elif (module, name) in _ALLOWED or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: a model file holds only numpy arrays, "
            "scipy.sparse matrices and chumpy arrays"
        )


def _numpy_attribute(module: str, name: str) -> Any:
    """numpy.core.X.name from numpy._core.X where numpy has it (numpy >= 2), else numpy.core.X."""
    for candidate in (module.replace("numpy.core.", "numpy._core."), module):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


def _unpickle(file: Any, path: Path) -> Any:
    try:
        return _ModelUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError) as error:
        raise ValueError(f"cannot read model file {path}: {error}") from error


def _load_pkl(path: Path) -> dict[str, Any]:
    with open(path, "rb") as file:
        content = _unpickle(file, path)
    if not isinstance(content, dict):
        raise ValueError(f"model file {path} must hold a dict, got {type(content).__name__}")
    return content


def _npz_member(path: Path, key: str) -> Any:
    """An npz entry stored as a pickled object array, through the restricted unpickler."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(file)
        else:
            np.lib.format.read_array_header_2_0(file)
        return _unpickle(file, path)


def _load_npz(path: Path) -> dict[str, Any]:
    content: dict[str, Any] = {}
    try:
        npz = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(f"cannot read model file {path}: {error}") from error
    with npz:
        for key in MODEL_KEYS:
            if key not in npz.files:
                continue
            try:
                content[key] = npz[key]
            except ValueError:  # an object array (e.g. a pickled sparse matrix)
                content[key] = _npz_member(path, key)
    return content


# ----------------------------------------------------------------------------- public API


def validate_model(model: Mapping[str, Any], source: str = "model") -> dict[str, np.ndarray]:
    """Checks and converts model arrays: floats to float64 [V,3], [V,3,S], [V,3,9(J-1)],
    [J,V], [V,J]; kintree_table [2,J] and faces f [F,3] to int64. Raises ValueError naming
    the key that is missing or wrong."""
    missing = [key for key in MODEL_KEYS if key not in model]
    if missing:
        raise ValueError(
            f"{source} lacks key(s) {', '.join(missing)} "
            f"(has: {', '.join(sorted(map(str, model)))})"
        )
    arrays = {key: _to_array(key, model[key]) for key in MODEL_KEYS}
    for key in MODEL_KEYS:
        array = arrays[key]
        is_int = key in ("kintree_table", "f")
        if not np.issubdtype(array.dtype, np.number):
            raise ValueError(f"{source}: {key} must be numeric, got dtype {array.dtype}")
        if (
            is_int
            and not np.issubdtype(array.dtype, np.integer)
            and (not np.all(np.isfinite(array)) or np.any(array != np.round(array)))
        ):
            raise ValueError(f"{source}: {key} must hold integers")
        if not is_int and not np.all(np.isfinite(array)):
            raise ValueError(f"{source}: {key} has non-finite values")
        arrays[key] = array.astype(np.int64 if is_int else np.float64)

    def expect(key: str, shape: tuple[int | None, ...], text: str) -> None:
        array = arrays[key]
        if array.ndim != len(shape) or any(
            s is not None and a != s for a, s in zip(array.shape, shape, strict=True)
        ):
            raise ValueError(f"{source}: {key} must have shape {text}, got {list(array.shape)}")

    v_template = arrays["v_template"]
    if v_template.ndim != 2 or v_template.shape[1] != 3 or v_template.shape[0] == 0:
        raise ValueError(
            f"{source}: v_template must have shape [V>0, 3], got {list(v_template.shape)}"
        )
    n_vertices = v_template.shape[0]
    expect("kintree_table", (2, None), "[2, J]")
    try:
        parents_from_kintree(arrays["kintree_table"])
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    n_joints = arrays["kintree_table"].shape[1]
    n_pose = 9 * (n_joints - 1)
    expect("shapedirs", (n_vertices, 3, None), f"[V, 3, S] = [{n_vertices}, 3, S]")
    expect("posedirs", (n_vertices, 3, n_pose), f"[V, 3, 9*(J-1)] = [{n_vertices}, 3, {n_pose}]")
    expect("J_regressor", (n_joints, n_vertices), f"[J, V] = [{n_joints}, {n_vertices}]")
    expect("weights", (n_vertices, n_joints), f"[V, J] = [{n_vertices}, {n_joints}]")
    expect("f", (None, 3), "[F, 3]")
    error = np.abs(arrays["weights"].sum(axis=1) - 1.0)
    if error.max() > WEIGHT_SUM_TOLERANCE:
        worst = int(error.argmax())
        raise ValueError(
            f"{source}: weights rows must sum to 1, got row {worst} summing to "
            f"{arrays['weights'][worst].sum():.6g}"
        )
    faces = arrays["f"]
    if faces.size and (faces.min() < 0 or faces.max() >= n_vertices):
        raise ValueError(
            f"{source}: f must index vertices 0..{n_vertices - 1}, "
            f"got indices {faces.min()}..{faces.max()}"
        )
    return arrays


def load_model_file(path: str | Path) -> dict[str, np.ndarray]:
    """Reads an SMPL-family model (.pkl as distributed, or .npz) into numpy arrays: v_template
    [V,3], shapedirs [V,3,S], posedirs [V,3,9(J-1)], J_regressor [J,V] (dense), weights [V,J]
    (float64, metres), kintree_table [2,J] and f [F,3] (int64)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise ValueError(f"model file must end in one of {SUFFIXES}, got {path.name!r}")
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    content = _load_npz(path) if path.suffix.lower() == ".npz" else _load_pkl(path)
    return validate_model(content, source=f"model file {path}")
