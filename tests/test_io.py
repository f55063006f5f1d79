"""Atomic file output."""

from __future__ import annotations

import os
import stat

import pytest
import torch
from PIL import Image

from mp3d.io import atomic_path, save_gif, save_image


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["result.txt"]


def test_written_files_get_the_usual_mode(tmp_path):
    """mkstemp makes 0600 files; the renamed result gets what open() would have given."""
    with atomic_path(tmp_path / "shared.txt") as tmp:
        tmp.write_text("readable by the group and others, as umask allows")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "shared.txt").stat().st_mode) == 0o666 & ~mask


def test_save_image_and_gif(tmp_path):
    image = torch.zeros(4, 5, 3)
    image[3, 4] = torch.tensor([1.0, 0.5, 2.0])  # clamped to [0, 1]
    save_image(image, tmp_path / "a.png")
    with Image.open(tmp_path / "a.png") as png:
        assert png.size == (5, 4)
        assert png.getpixel((4, 3)) == (255, 128, 255)
        assert png.getpixel((0, 0)) == (0, 0, 0)
    save_gif(torch.stack([image, 1 - image]), tmp_path / "a.gif")
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 2
    with pytest.raises(ValueError, match="image must have shape"):
        save_image(torch.zeros(4, 5), tmp_path / "b.png")
    with pytest.raises(ValueError, match="frames must have shape"):
        save_gif(torch.zeros(0, 4, 5, 3), tmp_path / "b.gif")
