"""mp3d.body.load_model_file: .npz and official-format .pkl (chumpy, sparse, Python 2)."""

from __future__ import annotations

import io
import pickle
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse

from mp3d.body import MODEL_KEYS, load_model_file, validate_model
from tests.body.helpers import random_model, write_official_pkl


def _assert_same(loaded: dict[str, np.ndarray], model: dict[str, np.ndarray]) -> None:
    assert set(loaded) == set(MODEL_KEYS)
    for key in MODEL_KEYS:
        np.testing.assert_array_equal(loaded[key], model[key], err_msg=key)
    assert loaded["f"].dtype == np.int64 and loaded["v_template"].dtype == np.float64


def test_npz_round_trip(tmp_path):
    model = random_model(seed=1)
    np.savez(tmp_path / "m.npz", extra=np.arange(3), **model)  # extra keys are ignored
    _assert_same(load_model_file(tmp_path / "m.npz"), model)


def test_official_pkl_with_chumpy_sparse_and_python2_strings(tmp_path):
    model = random_model(seed=2)
    path = write_official_pkl(model, tmp_path / "SMPL_NEUTRAL.pkl")
    raw = path.read_bytes()
    assert b"chumpy.ch" in raw and b"scipy.sparse.csc" in raw and b"numpy.core" in raw
    assert "chumpy" not in sys.modules  # the fake module is gone: stand-ins do the work
    with pytest.raises(ModuleNotFoundError, match="chumpy"):
        pickle.loads(raw, encoding="latin1")  # plain pickle cannot read it without chumpy
    _assert_same(load_model_file(path), model)


def test_npz_with_a_pickled_sparse_regressor(tmp_path):
    model = random_model(seed=3)
    sparse = np.empty((), dtype=object)
    sparse[()] = scipy.sparse.csc_matrix(model["J_regressor"])
    np.savez(tmp_path / "m.npz", **{**model, "J_regressor": sparse})
    loaded = load_model_file(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded["J_regressor"], model["J_regressor"])


class _Evil:
    def __reduce__(self):
        return (print, ("pickle ran code",))


def test_pkl_refuses_classes_a_model_file_does_not_need(tmp_path, capsys):
    model = random_model(seed=4)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({**model, "v_template": _Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_model_file(path)
    assert "pickle ran code" not in capsys.readouterr().out


def test_ambiguous_chumpy_state_is_a_clear_error(tmp_path):
    model = random_model(seed=5)
    buffer = io.BytesIO()
    pickle.Pickler(buffer, protocol=2).dump({**model, "shapedirs": _TwoArrays()})
    data = buffer.getvalue().replace(
        b"tests.body.test_model_file\n_TwoArrays", b"chumpy.ch_ops\nadd"
    )
    (tmp_path / "m.pkl").write_bytes(data)
    with pytest.raises(ValueError, match="shapedirs: cannot tell which array.*chumpy.ch_ops.add"):
        load_model_file(tmp_path / "m.pkl")


class _TwoArrays:
    def __init__(self):
        self.a, self.b = np.zeros(3), np.ones(3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("posedirs"), "lacks key.*posedirs"),
        (lambda m: m.update(posedirs=m["posedirs"][..., :200]), "posedirs must have shape"),
        (lambda m: m.update(shapedirs=m["shapedirs"][:-1]), "shapedirs must have shape"),
        (lambda m: m.update(J_regressor=m["J_regressor"].T), "J_regressor must have shape"),
        (lambda m: m.update(weights=m["weights"] * 1.01), "weights rows must sum to 1"),
        (lambda m: m.update(f=m["f"] + 1000), "f must index vertices"),
        (lambda m: m.update(v_template=m["v_template"][:, :2]), "v_template must have shape"),
        (lambda m: m.update(kintree_table=m["kintree_table"][:, ::-1]), "kintree_table"),
        (lambda m: m["v_template"].__setitem__((0, 0), np.nan), "v_template has non-finite"),
    ],
)
def test_bad_model_arrays_name_the_key(tmp_path, change, message):
    model = random_model(seed=6)
    change(model)
    np.savez(tmp_path / "m.npz", **model)
    with pytest.raises(ValueError, match=message):
        load_model_file(tmp_path / "m.npz")
    with pytest.raises(ValueError, match=message):
        validate_model(model)


def test_bad_paths(tmp_path):
    with pytest.raises(ValueError, match=r"\.npz"):
        load_model_file(tmp_path / "model.json")
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        load_model_file(tmp_path / "missing.pkl")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read model file"):
        load_model_file(tmp_path / "broken.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError, match="lacks key"):
        load_model_file(tmp_path / "empty.npz")
