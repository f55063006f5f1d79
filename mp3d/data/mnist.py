"""MNIST in its own IDX format, and the two views of the digits that likelihood models train on.

Reading: ``read_idx`` reads any IDX file (gzip or plain, told apart by the gzip magic bytes,
not by the name) and checks its header against its size; ``read_images`` / ``read_labels``
also insist on MNIST's magic numbers (0x00000803: unsigned bytes in 3 dimensions, 0x00000801:
unsigned bytes in 1) and ``load_mnist`` finds the files of a folder by their names and splits
them (see ``load_mnist`` for which split).

Views (both return float32 tensors on the CPU, shaped like their input, e.g. [N,28,28]; the
batch helpers add a channel: [B,1,28,28], as convolutional models take them):

- binarised: each pixel is 1 with probability pixel/255 (``binarise``). Evaluation images are
  binarised once with a fixed seed, so every model is scored on the same bits; training
  images are binarised afresh every epoch (dynamic binarisation), reproducibly from
  (seed, epoch) so that a resumed run sees the same data as an uninterrupted one.
- dequantised 8-bit: x = (pixel + u) / 256 with u ~ U[0,1) per pixel (``dequantise``), so x
  lies in [0,1) (float32 rounds the top ~1e-7 of pixel 255 to exactly 1.0), and a flow
  models y = logit(alpha + (1 - 2 alpha) x) (``logit_transform``; RealNVP's transform and its
  constant alpha = 0.05, as in its code: 0.05 + 0.9 x; MAF used 1e-6 on MNIST).

Bits per dimension of the 8-bit data, from a density over y (D = pixels per image):

    v = pixel + u in [0,256)^D,  x = v / 256,  y = logit(alpha + (1 - 2 alpha) x)
    p_v(v) = p_x(x) / 256^D                      (x = v/256 shrinks volume by 256 per dim)
    p_x(x) = p_y(y) |det dy/dx|                  (change of variables)
    log|det dy/dx| = sum_d [log(1 - 2 alpha) - log s_d - log(1 - s_d)],  s = alpha + (1-2 alpha) x
    -log P(pixels) <= E_u[-log p_v(pixels + u)]  (uniform dequantisation, Theis et al. 2016)
                    = E_u[-log p_y(y) - log|det dy/dx| + D log 256]
    bits/dim = (nll_y - log|det dy/dx| + D log 256) / (D log 2)

(``bits_per_dim``). A density that is uniform on [0,1)^D in x scores exactly 8 bits/dim: then
nll_y = log|det dy/dx| and only D log 256 is left. One noise sample per evaluation image,
fixed by the evaluation seed, estimates the expectation over u.
"""

from __future__ import annotations

import gzip
import math
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions: [N, rows, cols]
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension: [N]
# IDX type codes (third header byte) -> big-endian numpy dtypes.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
N_EVAL = 1000  # the shared README's split: the last 1,000 images are for evaluation
DEFAULT_ALPHA = 0.05  # RealNVP's logit-transform constant
EVAL_SEED = 0  # seed of the evaluation images' binarisation / dequantisation noise
VIEWS = ("binarised", "dequantised", "grey")  # grey: pixel / 255, no noise (GANs, diffusion)

# <prefix>-images-idx3-ubyte[.gz], <prefix>-labels-idx1-ubyte[.gz]; a dot before "idx" too
# (train-images.idx3-ubyte, as some mirrors spell it).
_FILE_PATTERN = re.compile(r"^(?P<prefix>.+?)-(?P<kind>images|labels)[-.]idx[13]-ubyte(?:\.gz)?$")
ACCEPTED_NAMES = (
    "PREFIX-images-idx3-ubyte[.gz] with PREFIX-labels-idx1-ubyte[.gz] (also spelled "
    "PREFIX-images.idx3-ubyte), e.g. mnist-9k-*, or train-* with t10k-* for the official split"
)


@dataclass
class MNIST:
    """Digits and labels of one split; images uint8 [N,28,28] (0 black .. 255 white)."""

    train_images: np.ndarray  # [N_train, 28, 28] uint8
    train_labels: np.ndarray  # [N_train] uint8 in 0..9
    test_images: np.ndarray  # [N_test, 28, 28] uint8
    test_labels: np.ndarray  # [N_test] uint8 in 0..9
    source: str  # the files and the split, in words


def _read_idx(path: Path, expected_magic: int | None, what: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as error:
            raise ValueError(f"{path}: truncated or corrupt gzip stream ({error})") from None
    if len(raw) < 4:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, an IDX header needs at least 4")
    (magic,) = struct.unpack(">I", raw[:4])
    if expected_magic is not None and magic != expected_magic:
        hint = ""
        if magic in (IMAGES_MAGIC, LABELS_MAGIC):
            hint = f" (0x{magic:08x} is MNIST's {'images' if magic == IMAGES_MAGIC else 'labels'})"
        raise ValueError(
            f"{path}: wrong magic number 0x{magic:08x}{hint}, expected 0x{expected_magic:08x} "
            f"for {what}"
        )
    type_code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or type_code not in IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file: magic number 0x{magic:08x}, expected 0x0000TTNN with type "
            f"code TT in {[f'0x{code:02x}' for code in IDX_DTYPES]} and NN >= 1 dimensions"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: truncated: {len(raw)} bytes, the header of {ndim} dimensions needs {header}"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[type_code]
    count = math.prod(dims)
    expected, present = count * dtype.itemsize, len(raw) - header
    if present < expected:
        raise ValueError(
            f"{path}: truncated: dimensions {list(dims)} need {expected} bytes of data after the "
            f"header, the file has {present}"
        )
    if present > expected:
        raise ValueError(
            f"{path}: {present - expected} bytes more than dimensions {list(dims)} account for "
            f"({expected} bytes of data expected after the header)"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return data.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def read_idx(path: str | Path) -> np.ndarray:
    """Any IDX file (gzip or plain) -> array of its dimensions and type, in native byte order."""
    return _read_idx(Path(path), None, "an IDX file")


def read_images(path: str | Path) -> np.ndarray:
    """An MNIST images file (magic 0x00000803) -> uint8 [N, rows, cols]."""
    return _read_idx(Path(path), IMAGES_MAGIC, "images (unsigned bytes, 3 dimensions)")


def read_labels(path: str | Path) -> np.ndarray:
    """An MNIST labels file (magic 0x00000801) -> uint8 [N] with values in 0..9."""
    labels = _read_idx(Path(path), LABELS_MAGIC, "labels (unsigned bytes, 1 dimension)")
    if labels.size and int(labels.max()) > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"{path}: label {int(labels[bad])} at index {bad} is not a digit 0..9")
    return labels


def read_pair(images_path: str | Path, labels_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N,rows,cols] and labels uint8 [N] from two files, checked to agree on N."""
    images, labels = read_images(images_path), read_labels(labels_path)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds "
            f"{labels.shape[0]} labels"
        )
    return images, labels


def find_mnist_files(folder: str | Path) -> dict[str, tuple[Path, Path]]:
    """Folder -> {prefix: (images file, labels file)} for every complete pair named as MNIST's."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {folder}")
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = _FILE_PATTERN.match(path.name)
        if match is None or not path.is_file():
            continue
        kinds = found.setdefault(match["prefix"], {})
        # Both the .gz and its unpacked copy may be present: keep the unpacked one.
        if match["kind"] not in kinds or kinds[match["kind"]].suffix == ".gz":
            kinds[match["kind"]] = path
    pairs = {}
    for prefix, kinds in found.items():
        if set(kinds) != {"images", "labels"}:
            (present,) = kinds.values()
            missing = "labels" if "images" in kinds else "images"
            raise ValueError(
                f"{folder}: {present.name} has no matching {missing} file "
                f"({prefix}-{missing}-idx{1 if missing == 'labels' else 3}-ubyte[.gz])"
            )
        pairs[prefix] = (kinds["images"], kinds["labels"])
    if not pairs:
        raise FileNotFoundError(f"no MNIST files in {folder}: expected {ACCEPTED_NAMES}")
    return pairs


def load_mnist(folder: str | Path, *, n_train: int | None = None, n_eval: int = N_EVAL) -> MNIST:
    """A folder of MNIST IDX files -> MNIST with a train and an evaluation split.

    With one pair of files (the shared ``mnist-9k-*``, or any one pair) the last ``n_eval``
    images are the evaluation set and the first ``n_train`` (default: all the others) the
    training set: for the shared 9,000 images, the README's 8,000 / 1,000. With both the
    official ``train-*`` and ``t10k-*`` pairs, training comes from train and evaluation from
    t10k (its first ``n_eval``; pass n_eval=10000 for all), the first ``n_train`` of train.
    """
    folder = Path(folder)
    if n_train is not None and n_train < 0:
        raise ValueError(f"n_train must be >= 0 or None, got {n_train}")
    if n_eval < 0:
        raise ValueError(f"n_eval must be >= 0, got {n_eval}")
    pairs = find_mnist_files(folder)
    if "train" in pairs and "t10k" in pairs:
        train_images, train_labels = read_pair(*pairs["train"])
        test_images, test_labels = read_pair(*pairs["t10k"])
        for name, wanted, have in (
            ("n_train", n_train, len(train_images)),
            ("n_eval", n_eval, len(test_images)),
        ):
            if wanted is not None and wanted > have:
                raise ValueError(f"{name}={wanted} but {folder} has only {have} such images")
        n_train = len(train_images) if n_train is None else n_train
        source = (
            f"{folder}: first {n_train} of {pairs['train'][0].name} for training, first "
            f"{n_eval} of {pairs['t10k'][0].name} for evaluation"
        )
        return MNIST(
            train_images[:n_train],
            train_labels[:n_train],
            test_images[:n_eval],
            test_labels[:n_eval],
            source,
        )
    if len(pairs) > 1:
        raise ValueError(
            f"{folder}: several sets of MNIST files ({', '.join(sorted(pairs))}); expected one "
            f"pair, or the official train-* with t10k-*"
        )
    ((prefix, (images_path, labels_path)),) = pairs.items()
    images, labels = read_pair(images_path, labels_path)
    total = len(images)
    if n_eval > total:
        raise ValueError(f"n_eval={n_eval} but {images_path} holds only {total} images")
    available = total - n_eval
    if n_train is not None and n_train > available:
        raise ValueError(
            f"n_train={n_train} but {images_path} holds {total} images, of which the last "
            f"{n_eval} are for evaluation: at most {available} for training"
        )
    n_train = available if n_train is None else n_train
    source = (
        f"{images_path}: images 0..{n_train - 1} for training, {available}..{total - 1} "
        f"for evaluation"
    )
    return MNIST(
        images[:n_train],
        labels[:n_train],
        images[available:],
        labels[available:],
        source,
    )


# --- views -------------------------------------------------------------------------------------


def _as_uint8_tensor(images, name: str = "images") -> torch.Tensor:
    tensor = torch.as_tensor(images)
    if tensor.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 pixels 0..255, got dtype {tensor.dtype}")
    return tensor


def binarise(images, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 pixels [...] -> float32 {0,1} [...], each 1 with probability pixel/255."""
    pixels = _as_uint8_tensor(images)
    return torch.bernoulli(pixels.to(torch.float32) / 255.0, generator=generator)


def dequantise(images, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 pixels [...] -> float32 x = (pixel + u)/256 in [0,1] [...], u ~ U[0,1) each."""
    pixels = _as_uint8_tensor(images)
    noise = torch.rand(pixels.shape, generator=generator, dtype=torch.float32)
    return (pixels.to(torch.float32) + noise) / 256.0


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")


def logit_transform(
    x: torch.Tensor, alpha: float = DEFAULT_ALPHA
) -> tuple[torch.Tensor, torch.Tensor]:
    """x in [0,1] [B,...] -> (y = logit(alpha + (1-2 alpha) x) [B,...], log|det dy/dx| [B])."""
    _check_alpha(alpha)
    s = alpha + (1.0 - 2.0 * alpha) * x
    log_s, log_1ms = torch.log(s), torch.log1p(-s)
    y = log_s - log_1ms
    log_jac = math.log1p(-2.0 * alpha) - log_s - log_1ms
    return y, log_jac.flatten(1).sum(1)


def logit_inverse(y: torch.Tensor, alpha: float = DEFAULT_ALPHA) -> torch.Tensor:
    """y [B,...] -> x = (sigmoid(y) - alpha)/(1 - 2 alpha) [B,...]: logit_transform inverted."""
    _check_alpha(alpha)
    return (torch.sigmoid(y) - alpha) / (1.0 - 2.0 * alpha)


def bits_per_dim(
    nll: torch.Tensor, n_dims: int, logdet_transform: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Bits/dim of 8-bit data from nll = -log p(y) in nats [B] of y = transform(x), x = v/256.

    ``logdet_transform`` is log|det dy/dx| [B] (from ``logit_transform``; 0 for a density on
    x itself): bits/dim = (nll - logdet_transform + D log 256) / (D log 2).
    """
    if n_dims < 1:
        raise ValueError(f"n_dims must be >= 1, got {n_dims}")
    return (nll - logdet_transform + n_dims * math.log(256.0)) / (n_dims * math.log(2.0))


def to_pixels(x: torch.Tensor) -> torch.Tensor:
    """Dequantised x in [0,1) (any real) -> uint8 pixels floor(256 x), clamped to 0..255."""
    return torch.floor(x * 256.0).clamp(0, 255).to(torch.uint8)


# --- batches ------------------------------------------------------------------------------------


def _view(pixels: torch.Tensor, view: str, generator: torch.Generator) -> torch.Tensor:
    if view == "binarised":
        return binarise(pixels, generator)
    if view == "dequantised":
        return dequantise(pixels, generator)
    if view == "grey":
        return pixels.float() / 255.0
    raise ValueError(f"view must be one of {VIEWS}, got {view!r}")


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream is fixed by (seed, epoch) and differs between epochs."""
    state = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0]) & ((1 << 63) - 1))


def evaluation_view(images, view: str, seed: int = EVAL_SEED) -> torch.Tensor:
    """uint8 [N,H,W] -> float32 [N,1,H,W] binarised or dequantised with a fixed seed.

    The same tensor on every call (and for every batch size): the fixed evaluation data.
    """
    pixels = _as_uint8_tensor(images)
    if pixels.dim() != 3:
        raise ValueError(f"images must be [N,H,W], got shape {tuple(pixels.shape)}")
    return _view(pixels, view, torch.Generator().manual_seed(int(seed))).unsqueeze(1)


def evaluation_batches(
    images, batch_size: int, view: str, seed: int = EVAL_SEED
) -> Iterator[torch.Tensor]:
    """Batches float32 [B,1,H,W] of ``evaluation_view`` in order (the last may be smaller)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    data = evaluation_view(images, view, seed)
    yield from data.split(batch_size)


def training_batches(
    images,
    batch_size: int,
    view: str,
    *,
    epoch: int,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = True,
    labels=None,
) -> Iterator[torch.Tensor] | Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of float32 [B,1,H,W] batches with fresh noise (dynamic binarisation);
    with labels [N], (images, labels int64 [B]) pairs instead.

    Order and noise come from (seed, epoch) only, so epoch e is the same after a resume.
    """
    pixels = _as_uint8_tensor(images)
    if pixels.dim() != 3:
        raise ValueError(f"images must be [N,H,W], got shape {tuple(pixels.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    generator = epoch_generator(seed, epoch)
    n = pixels.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    if labels is not None:
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}], got {list(labels.shape)}")
    for start in range(0, stop, batch_size):
        index = order[start : start + batch_size]
        batch = _view(pixels[index], view, generator).unsqueeze(1)
        yield batch if labels is None else (batch, labels[index])
