"""File output that never leaves a half-written file: write to a temporary name, then rename."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; renames it onto `path` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600; give it a new file's mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temporaries(path: str | Path, older_than: float = 60.0) -> list[Path]:
    """Deletes the temporaries that atomic_path(`path`) left behind when a process was killed
    mid-write (hidden `.NAME.*` files beside `path`, untouched for `older_than` seconds, so a
    save in progress elsewhere is spared); returns what it removed."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    removed = []
    now = time.time()
    for candidate in path.parent.glob(f".{path.name}.*{path.suffix}"):
        try:
            if candidate.is_file() and now - candidate.stat().st_mtime > older_than:
                candidate.unlink()
                removed.append(candidate)
        except OSError:  # raced with another cleaner or a finishing save: leave it
            continue
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float image [...,C] in [0,1] -> uint8 array, rounded."""
    return (image.detach().float().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Saves an image [H,W,3] or [H,W,4] (float in [0,1]) as PNG (or any format PIL knows)."""
    if image.dim() != 3 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must have shape [H, W, 1|3|4], got {list(image.shape)}")
    array = to_uint8(image)
    if array.shape[-1] == 1:
        array = array[..., 0]
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp)
    return Path(path)


def save_gif(frames: torch.Tensor, path: str | Path, fps: float = 12.0) -> Path:
    """Saves frames [F,H,W,3] (float in [0,1]) as a looping GIF."""
    if frames.dim() != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape [F>0, H, W, 3], got {list(frames.shape)}")
    images = [Image.fromarray(frame) for frame in to_uint8(frames)]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=int(round(1000 / fps)),
            loop=0,
        )
    return Path(path)


def write_checkpoint(path: str | Path, format_name: str, version: int, payload: dict) -> Path:
    """Writes an mp3d checkpoint: `payload` (tensors and plain containers only, so that
    read_checkpoint can load it without running code) tagged with its format and version,
    atomically, so an interrupted save never replaces a good checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": format_name, "version": version, **payload}, tmp)
    return Path(path)


def _load_payload(path: Path):
    """torch.load of an mp3d checkpoint with weights_only (never running code from it)."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        # weights_only: a checkpoint holds tensors and plain containers, never code to run.
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error), flags=re.IGNORECASE)
        if found is None:
            raise ValueError(
                f"{path}: not a readable checkpoint (not a torch.save file)"
            ) from error
        raise ValueError(
            f"{path}: refused: the file holds a Python object ({found.group(1)}) "
            f"besides tensors and plain containers, which could run code when "
            f"loaded; mp3d never writes such checkpoints"
        ) from error
    except Exception as error:
        raise ValueError(f"{path}: not a readable checkpoint ({error})") from error


def checkpoint_format(path: str | Path) -> str:
    """The format name an mp3d checkpoint file is tagged with (e.g. "mp3d.onet"), to pick
    its reader; FileNotFoundError or ValueError naming the file otherwise."""
    path = Path(path)
    payload = _load_payload(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str):
        raise ValueError(f"{path}: not an mp3d checkpoint (it has no format tag)")
    return payload["format"]


def read_checkpoint(path: str | Path, format_name: str, version: int, kind: str) -> dict:
    """The payload dict of an mp3d checkpoint file, checked to be of `format_name` and
    `version`; FileNotFoundError or ValueError (naming the file) otherwise. `kind` names the
    checkpoint in messages (e.g. "NeRF")."""
    path = Path(path)
    payload = _load_payload(path)
    if not isinstance(payload, dict) or payload.get("format") != format_name:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path}: not an mp3d {kind} checkpoint (format {found!r}, expected {format_name!r})"
        )
    if payload.get("version") != version:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')} is not {version}")
    return payload
