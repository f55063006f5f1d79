"""Any scene folder mp3d reads, split into training and evaluation views by one rule."""

from __future__ import annotations

from pathlib import Path

import torch

from mp3d.cameras import Orbit, orbit_of_views
from mp3d.data.blender import load_blender
from mp3d.data.colmap import load_colmap
from mp3d.data.views import PosedViews, hold_out
from mp3d.training import check_int

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


def scene_metadata(
    data_dir: str | Path, kind: str, views: PosedViews, downscale: int, holdout: int
) -> dict:
    """What a checkpoint keeps of the scene it was trained on (JSON-able): the folder and how
    it was loaded (format, downscale, holdout), the image size, the first view's intrinsics
    K, the background, and the orbit of the training cameras for turntables."""
    orbit = orbit_of_views(views.c2ws)
    return {
        "data": str(Path(data_dir).resolve()),
        "format": kind,
        "downscale": downscale,
        "holdout": holdout,
        "background": views.background_rgb.tolist(),
        "width": views.width,
        "height": views.height,
        "K": views.Ks[0].tolist(),
        "orbit": {
            "centre": orbit.centre.tolist(),
            "up": orbit.up.tolist(),
            "radius": orbit.radius,
            "elevation_deg": orbit.elevation_deg,
        },
    }


def metadata_cameras(meta: dict, checkpoint) -> tuple[Orbit, torch.Tensor, tuple[int, int]]:
    """The orbit, intrinsics K [3,3] and (width, height) of `scene_metadata` as stored with
    `checkpoint` (named in errors)."""
    orbit = meta.get("orbit")
    needed = {"centre", "up", "radius", "elevation_deg"}
    if (
        not {"K", "width", "height"} <= meta.keys()
        or not isinstance(orbit, dict)
        or not needed <= orbit.keys()
    ):
        raise ValueError(
            f"{checkpoint}: has no camera metadata to render with (K, width, "
            f"height and orbit, written by the training command): retrain it"
        )
    try:
        K = torch.tensor(meta["K"], dtype=torch.float32).reshape(3, 3)
        width, height = check_int("width", meta["width"], 1), check_int("height", meta["height"], 1)
        centre = torch.tensor(orbit["centre"], dtype=torch.float32)
        up = torch.tensor(orbit["up"], dtype=torch.float32)
        radius, elevation = float(orbit["radius"]), float(orbit["elevation_deg"])
        return Orbit(centre, up, radius, elevation), K, (width, height)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{checkpoint}: its camera metadata is not valid ({error})") from error


def metadata_eval_views(meta: dict, progress: bool = True) -> PosedViews | None:
    """The held-out views of the scene in `scene_metadata`, loaded as in training, or None
    when that folder is no longer there."""
    data = Path(str(meta.get("data", "")))
    if not meta.get("data") or not data.is_dir():
        return None
    background = meta.get("background", [1.0, 1.0, 1.0])
    holdout = int(meta.get("holdout", DEFAULT_HOLDOUT))
    return load_scene(data, int(meta.get("downscale", 1)), background, holdout, progress)[1]
