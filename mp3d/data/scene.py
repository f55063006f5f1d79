"""Any scene folder mp3d reads, split into training and evaluation views by one rule."""

from __future__ import annotations

from pathlib import Path

from mp3d.data.blender import load_blender
from mp3d.data.colmap import load_colmap
from mp3d.data.views import PosedViews, hold_out

FORMATS = ("blender", "colmap")
DEFAULT_HOLDOUT = 8  # every 8th view held back, as in the NeRF and 3DGS evaluations


def detect_format(data_dir: str | Path) -> str:
    """ "blender" for a folder with transforms_train.json, "colmap" for one with sparse/0."""
    data_dir = Path(data_dir)
    if (data_dir / "transforms_train.json").is_file():
        return "blender"
    if (data_dir / "sparse" / "0").is_dir():
        return "colmap"
    if not data_dir.exists():
        raise FileNotFoundError(f"scene folder not found: {data_dir}")
    raise FileNotFoundError(
        f"{data_dir}: not a scene folder (expected transforms_train.json "
        f"for a Blender scene or sparse/0 for a COLMAP reconstruction)"
    )


def load_scene(
    data_dir: str | Path,
    downscale: int = 1,
    background="white",
    holdout: int = DEFAULT_HOLDOUT,
    progress: bool = True,
) -> tuple[PosedViews, PosedViews, str]:
    """(training views, evaluation views, format) of a Blender or COLMAP folder. Blender: the
    test split if there is one, else every `holdout`-th training view held back (images
    composited on `background`); COLMAP: every `holdout`-th image, sorted by name."""
    data_dir = Path(data_dir)
    kind = detect_format(data_dir)
    if kind == "colmap":
        return (
            *hold_out(load_colmap(data_dir, downscale, progress=progress), holdout, data_dir),
            kind,
        )
    views = load_blender(data_dir, "train", downscale, background, progress)
    if (data_dir / "transforms_test.json").is_file():
        return views, load_blender(data_dir, "test", downscale, background, progress), kind
    return (*hold_out(views, holdout, data_dir), kind)
