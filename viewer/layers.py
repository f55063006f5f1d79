"""What the viewer shows from one path: a `Layer` adds scene nodes and controls to a viser
server, tells the viewer where its content lies (to frame the first view) and which way is
up, and, for models drawn on the server, renders what an mp3d camera sees."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mp3d.cameras import Camera
from mp3d.rendering import Rendering

if TYPE_CHECKING:  # viser is imported by the viewer itself, lazily for the CLI
    import viser

__all__ = ["Layer", "bounds_of", "node_name"]


def node_name(path: Path | str, index: int) -> str:
    """A scene-node name for the index-th path: /<index>_<file name>, without the characters
    viser reads as separators."""
    stem = Path(path).name.replace("/", "_").replace(" ", "_") or "item"
    return f"/{index}_{stem}"


def bounds_of(points: np.ndarray) -> np.ndarray | None:
    """Axis-aligned box [2,3] (min row, max row) of finite points [N,3]; None if none."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return None
    return np.stack([points.min(axis=0), points.max(axis=0)])


class Layer:
    """One shown item. Subclasses set `kind` and override what they support."""

    kind = "item"
    renders_on_server = False  # True: render() draws it (NeRF, DVR, exact splats)
    server_only = False  # True: nothing shows it in the browser (NeRF, DVR): drawn at once
    # Strips a server-side render is cut into (each a chance to abandon it): 1 where every
    # call pays a fixed cost per item (the rasterizer projects every Gaussian each time).
    render_strips = 8

    def __init__(self, path: Path | str, name: str) -> None:
        self.path = Path(path)
        self.name = name  # scene-node prefix, from node_name
        self.server: viser.ViserServer | None = None

    @property
    def label(self) -> str:
        """How the item is named in the controls: its kind and file name."""
        return f"{self.kind}: {self.path.name}"

    def bounds(self) -> np.ndarray | None:
        """Axis-aligned box [2,3] of the content in world units (None: unknown)."""
        return None

    def up(self) -> str | None:
        """The world axis ("+z", "-y", ...) that is up for this content (None: no opinion)."""
        return None

    def attach(self, server: viser.ViserServer) -> None:
        """Adds the item's scene nodes and controls to `server`."""
        self.server = server

    def set_server_rendered(self, active: bool) -> None:
        """The viewer now draws this item on the server (True) or not: items with a
        client-side form too (Gaussian splats) hide it while the server draws them."""

    def render(self, camera: Camera) -> Rendering:
        """What `camera` sees (only for renders_on_server layers)."""
        raise NotImplementedError(f"{self.label} is drawn in the browser, not on the server")
