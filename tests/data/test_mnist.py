"""MNIST's IDX reader on tiny files written here (good and broken), the folder split, the
binarised and dequantised views, the logit transform's Jacobian and bits/dim; the shared
9,000 digits when ../shared/data/mnist is present."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mp3d.data.mnist import (
    DEFAULT_ALPHA,
    binarise,
    bits_per_dim,
    dequantise,
    evaluation_batches,
    evaluation_view,
    find_mnist_files,
    load_mnist,
    logit_inverse,
    logit_transform,
    read_idx,
    read_images,
    read_labels,
    read_pair,
    to_pixels,
    training_batches,
)

MNIST_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"
CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    code = CODES[array.dtype.type]
    magic = (code << 8 | array.ndim) if magic is None else magic
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False, **kwargs) -> Path:
    data = idx_bytes(array, **kwargs)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def digits(n: int, seed: int = 0, size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n, dtype=np.uint8)


def write_pair(folder: Path, prefix: str, n: int, seed: int = 0, gz: bool = True):
    images, labels = digits(n, seed)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz=gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz=gz)
    return images, labels


# --- the reader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_images_and_labels_round_trip_plain_and_gzip(tmp_path, gz):
    images, labels = digits(5)
    a = write_idx(tmp_path / "a-images-idx3-ubyte", images, gz=gz)
    b = write_idx(tmp_path / "a-labels-idx1-ubyte", labels, gz=gz)
    got_images, got_labels = read_pair(a, b)
    assert got_images.dtype == np.uint8 and got_images.shape == (5, 4, 4)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32])
def test_read_idx_reads_other_types_in_native_byte_order(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    got = read_idx(write_idx(tmp_path / "x.idx", array))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere-images"):
        read_images(tmp_path / "nothere-images-idx3-ubyte")


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_data_is_refused_with_the_sizes(tmp_path, gz):
    data = idx_bytes(digits(3)[0])[:-5]
    path = tmp_path / "short-images-idx3-ubyte"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"short-images.*truncated.*need 48 bytes.*has 43"):
        read_images(path)


def test_truncated_header_and_gzip_stream_are_refused(tmp_path):
    header_only = tmp_path / "h-images-idx3-ubyte"
    header_only.write_bytes(struct.pack(">II", 0x803, 3))  # 3 dimensions announced, 1 given
    with pytest.raises(ValueError, match="h-images.*truncated.*header"):
        read_images(header_only)
    tiny = tmp_path / "t-images-idx3-ubyte"
    tiny.write_bytes(b"\0\0")
    with pytest.raises(ValueError, match="t-images.*truncated"):
        read_images(tiny)
    cut = tmp_path / "cut-images-idx3-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_bytes(digits(50)[0]))[:-30])
    with pytest.raises(ValueError, match="cut-images.*gzip"):
        read_images(cut)


def test_trailing_bytes_are_refused(tmp_path):
    path = tmp_path / "long-labels-idx1-ubyte"
    path.write_bytes(idx_bytes(digits(3)[1]) + b"\0\0")
    with pytest.raises(ValueError, match="long-labels.*2 bytes more"):
        read_labels(path)


def test_wrong_magic_numbers_are_refused_naming_file_and_numbers(tmp_path):
    images, labels = digits(3)
    labels_path = write_idx(tmp_path / "x-labels-idx1-ubyte", labels)
    with pytest.raises(ValueError, match=r"x-labels.*0x00000801.*labels.*expected 0x00000803"):
        read_images(labels_path)
    images_path = write_idx(tmp_path / "x-images-idx3-ubyte", images)
    with pytest.raises(ValueError, match=r"x-images.*0x00000803.*expected 0x00000801"):
        read_labels(images_path)
    odd = write_idx(tmp_path / "odd-images-idx3-ubyte", images, magic=0x00000903)
    with pytest.raises(ValueError, match="wrong magic number 0x00000903"):
        read_images(odd)
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="junk.idx: not an IDX file"):
        read_idx(junk)


def test_labels_must_be_digits_and_counts_must_agree(tmp_path):
    images, labels = digits(4)
    bad = labels.copy()
    bad[2] = 11
    with pytest.raises(ValueError, match="label 11 at index 2"):
        read_labels(write_idx(tmp_path / "b-labels-idx1-ubyte", bad))
    a = write_idx(tmp_path / "a-images-idx3-ubyte", images)
    b = write_idx(tmp_path / "a-labels-idx1-ubyte", labels[:3])
    with pytest.raises(ValueError, match=r"a-images.*4 images.*a-labels.*3 labels"):
        read_pair(a, b)


# --- finding and splitting ----------------------------------------------------------------------


def test_one_pair_is_split_last_n_eval_for_evaluation(tmp_path):
    images, labels = write_pair(tmp_path, "mnist-tiny", 12)
    data = load_mnist(tmp_path, n_eval=3)
    np.testing.assert_array_equal(data.train_images, images[:9])
    np.testing.assert_array_equal(data.train_labels, labels[:9])
    np.testing.assert_array_equal(data.test_images, images[9:])
    np.testing.assert_array_equal(data.test_labels, labels[9:])
    fewer = load_mnist(tmp_path, n_train=4, n_eval=3)  # the evaluation set does not move
    np.testing.assert_array_equal(fewer.train_images, images[:4])
    np.testing.assert_array_equal(fewer.test_images, images[9:])
    with pytest.raises(ValueError, match="n_train=10.*at most 9"):
        load_mnist(tmp_path, n_train=10, n_eval=3)
    with pytest.raises(ValueError, match="n_eval=13"):
        load_mnist(tmp_path, n_eval=13)


def test_official_train_and_t10k_pairs_give_the_official_split(tmp_path):
    train, train_labels = write_pair(tmp_path, "train", 7, seed=1, gz=False)
    test, _ = write_pair(tmp_path, "t10k", 5, seed=2)
    data = load_mnist(tmp_path, n_eval=5)
    np.testing.assert_array_equal(data.train_images, train)
    np.testing.assert_array_equal(data.train_labels, train_labels)
    np.testing.assert_array_equal(data.test_images, test)
    assert "train-images" in data.source and "t10k-images" in data.source
    assert load_mnist(tmp_path, n_train=2, n_eval=1).test_images.shape == (1, 4, 4)


def test_dotted_names_and_unpacked_copies_are_found(tmp_path):
    images, labels = digits(3)
    write_idx(tmp_path / "train-images.idx3-ubyte", images)
    write_idx(tmp_path / "train-labels.idx1-ubyte", labels)
    write_idx(tmp_path / "train-labels.idx1-ubyte.gz", labels, gz=True)
    pairs = find_mnist_files(tmp_path)
    assert [path.name for path in pairs["train"]] == [
        "train-images.idx3-ubyte",
        "train-labels.idx1-ubyte",
    ]


def test_folder_errors_say_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="MNIST folder not found"):
        load_mnist(tmp_path / "absent")
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(FileNotFoundError, match=r"no MNIST files.*images-idx3-ubyte.*t10k"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "solo-images-idx3-ubyte.gz", digits(2)[0], gz=True)
    with pytest.raises(ValueError, match="solo-images-idx3-ubyte.gz has no matching labels"):
        load_mnist(tmp_path)
    (tmp_path / "solo-images-idx3-ubyte.gz").unlink()
    write_pair(tmp_path, "one", 3)
    write_pair(tmp_path, "two", 3)
    with pytest.raises(ValueError, match="several sets of MNIST files.*one, two"):
        load_mnist(tmp_path)


# --- views and batches --------------------------------------------------------------------------


def test_binarise_is_bernoulli_of_pixel_over_255():
    pixels = torch.tensor([0, 51, 128, 255], dtype=torch.uint8).repeat(20000, 1)
    bits = binarise(pixels, torch.Generator().manual_seed(0))
    assert bits.dtype == torch.float32 and set(bits.unique().tolist()) <= {0.0, 1.0}
    np.testing.assert_allclose(bits.mean(0), [0.0, 0.2, 128 / 255, 1.0], atol=0.01)
    assert bits[:, 0].max() == 0 and bits[:, 3].min() == 1
    with pytest.raises(ValueError, match="uint8"):
        binarise(torch.zeros(3))


def test_dequantise_stays_inside_each_pixels_bin():
    pixels = torch.arange(256, dtype=torch.uint8).repeat(100, 1)
    x = dequantise(pixels, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(to_pixels(x), pixels)
    spread = (x * 256 - pixels.float()).std()
    assert abs(float(spread) - math.sqrt(1 / 12)) < 0.01  # U[0,1) noise


def test_evaluation_view_is_fixed_and_independent_of_batch_size():
    images = torch.from_numpy(digits(10)[0])
    for view in ("binarised", "dequantised"):
        whole = evaluation_view(images, view)
        assert whole.shape == (10, 1, 4, 4)
        assert torch.equal(whole, evaluation_view(images, view))
        assert torch.equal(torch.cat(list(evaluation_batches(images, 3, view))), whole)
        assert not torch.equal(whole, evaluation_view(images, view, seed=1))
    with pytest.raises(ValueError, match="view must be one of"):
        evaluation_view(images, "binary")


def test_training_batches_resample_each_epoch_and_repeat_for_the_same_epoch():
    # image i is constant i*20, so a dequantised pixel gives its index back
    images = (torch.arange(10, dtype=torch.uint8) * 20)[:, None, None].expand(10, 4, 4)
    epoch0 = list(training_batches(images, 4, "dequantised", epoch=0))
    assert [tuple(b.shape) for b in epoch0] == [(4, 1, 4, 4)] * 2  # drop_last
    again = list(training_batches(images, 4, "dequantised", epoch=0))
    assert all(torch.equal(a, b) for a, b in zip(epoch0, again))
    epoch1 = torch.cat(list(training_batches(images, 4, "dequantised", epoch=1, drop_last=False)))
    seen = (to_pixels(epoch1)[:, 0, 0, 0] // 20).tolist()
    assert sorted(seen) == list(range(10)) and seen != list(range(10))  # all, shuffled
    first = torch.cat(list(training_batches(images, 5, "binarised", epoch=0, shuffle=False)))
    second = torch.cat(list(training_batches(images, 5, "binarised", epoch=1, shuffle=False)))
    assert not torch.equal(first, second)  # fresh bits each epoch


# --- the logit transform and bits/dim -----------------------------------------------------------


def test_logit_transform_inverts_and_its_logdet_is_autograds():
    x = torch.rand(3, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y, logdet = logit_transform(x)
    assert y.shape == x.shape and logdet.shape == (3,)
    torch.testing.assert_close(logit_inverse(y), x)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v)[0], x[b : b + 1])
        jac = jac.reshape(4, 4)
        assert torch.count_nonzero(jac - torch.diag(torch.diagonal(jac))) == 0
        torch.testing.assert_close(logdet[b], torch.logdet(jac))
    edges = logit_transform(torch.tensor([[0.0, 1.0]]))[0]
    torch.testing.assert_close(edges, torch.tensor([[-1.0, 1.0]]) * math.log(0.95 / 0.05))
    with pytest.raises(ValueError, match="alpha must be in"):
        logit_transform(x, alpha=0.0)


def _nll_y_of_x_density(y: torch.Tensor, log_px) -> torch.Tensor:
    """-log p_y(y) for p_y(y) = p_x(x(y)) |dx/dy|, |dx/dy| by autograd (independent of mnist.py)."""
    y = y.detach().requires_grad_(True)
    x = logit_inverse(y)
    (dx_dy,) = torch.autograd.grad(x.sum(), y)  # elementwise map: the diagonal of the Jacobian
    return -(log_px(x.detach()) + dx_dy.log().flatten(1).sum(1))


def test_a_uniform_density_on_dequantised_pixels_scores_exactly_8_bits_per_dim():
    pixels = torch.from_numpy(digits(6, size=5)[0])
    x = dequantise(pixels, torch.Generator().manual_seed(3)).double().unsqueeze(1)
    y, logdet = logit_transform(x)
    nll_y = _nll_y_of_x_density(y, lambda x: torch.zeros(x.shape[0], dtype=x.dtype))
    bpd = bits_per_dim(nll_y, 25, logdet)
    torch.testing.assert_close(bpd, torch.full((6,), 8.0, dtype=torch.float64))
    torch.testing.assert_close(bits_per_dim(torch.zeros(6), 25), torch.full((6,), 8.0))


def test_a_piecewise_constant_density_scores_its_discrete_code_length():
    """p_x(x) = 256 P(floor(256 x)): the dequantisation bound is tight, bits/dim = -log2 P."""
    rng = np.random.default_rng(0)
    probs = torch.from_numpy(rng.dirichlet(np.ones(256)))
    pixels = torch.from_numpy(digits(4, size=3)[0])
    x = dequantise(pixels, torch.Generator().manual_seed(1)).double().unsqueeze(1)

    def log_px(x):
        return (math.log(256) + probs[to_pixels(x).long()].log()).flatten(1).sum(1)

    expected = -probs[pixels.long()].log2().flatten(1).mean(1)
    torch.testing.assert_close(bits_per_dim(-log_px(x), 9), expected)
    y, logdet = logit_transform(x, alpha=DEFAULT_ALPHA)
    torch.testing.assert_close(bits_per_dim(_nll_y_of_x_density(y, log_px), 9, logdet), expected)


# --- the shared digits --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_mnist():
    if not (MNIST_DIR / "mnist-9k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real data not found at {MNIST_DIR} (see shared/data/README.md)")
    return load_mnist(MNIST_DIR)


def test_the_shared_digits_load_with_the_readme_split(shared_mnist):
    data = shared_mnist
    assert data.train_images.shape == (8000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (1000, 28, 28) and data.test_labels.shape == (1000,)
    assert data.train_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # t10k's first
    assert set(np.unique(data.test_labels).tolist()) == set(range(10))
    bits = evaluation_view(data.test_images, "binarised")
    assert bits.shape == (1000, 1, 28, 28) and 0.1 < float(bits.mean()) < 0.16
