"""Radiance-field and surface checkpoints (`mp3d nerf train`, `mp3d dvr train`), rendered on
the server at the client's camera (see viewer.progressive), showing RGB, depth or opacity;
their scene box is drawn in the browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mp3d.cameras import Camera
from mp3d.rendering import Rendering
from mp3d.viewer.layers import Layer

__all__ = ["FieldLayer", "box_edges"]

BACKGROUND = (1.0, 1.0, 1.0)  # the viewer's white page


def box_edges(aabb: np.ndarray) -> np.ndarray:
    """The 12 edges [12,2,3] of the axis-aligned box aabb [6] (min xyz, max xyz)."""
    lo, hi = np.asarray(aabb[:3], dtype=np.float32), np.asarray(aabb[3:], dtype=np.float32)
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    points = lo + corners * (hi - lo)
    pairs = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    edges = [(i, j) for i, j in pairs if np.abs(corners[i] - corners[j]).sum() == 1]
    return np.stack([[points[i], points[j]] for i, j in edges]).astype(np.float32)


class FieldLayer(Layer):
    """A NeRF or DVR model (anything with render(camera, background) -> Rendering and an
    aabb buffer [6]) drawn on the server."""

    renders_on_server = True
    server_only = True

    def __init__(self, path, name, model: torch.nn.Module, kind: str, step: int | None) -> None:
        super().__init__(path, name)
        self.model = model.eval()
        self.kind = kind
        self.step = step

    @classmethod
    def from_checkpoint(cls, path: str | Path, name: str, format_name: str) -> FieldLayer:
        """The model of a checkpoint tagged `format_name` ("mp3d.nerf" or "mp3d.dvr")."""
        if format_name == "mp3d.nerf":
            from mp3d.nerf.checkpoint import load_checkpoint

            model, payload = load_checkpoint(path)
            return cls(path, name, model, f"NeRF ({model.spec.kind})", payload.get("step"))
        if format_name == "mp3d.dvr":
            from mp3d.implicit.dvr import load_dvr

            model, payload = load_dvr(path, device="cpu")
            return cls(path, name, model, f"DVR ({model.spec.renderer})", payload.get("step"))
        raise ValueError(f"{path}: {format_name!r} is not a radiance-field checkpoint")

    @property
    def label(self) -> str:
        step = f", step {self.step}" if self.step is not None else ""
        return f"{self.kind}: {self.path.name}{step}"

    def bounds(self) -> np.ndarray:
        aabb = self.model.aabb.detach().cpu().numpy().astype(np.float64)
        return np.stack([aabb[:3], aabb[3:]])

    def up(self) -> str:
        return "+z"  # Blender scenes, which these models are trained on, are z-up

    def attach(self, server) -> None:
        super().attach(server)
        server.scene.add_line_segments(
            f"{self.name}/box",
            box_edges(self.model.aabb.detach().cpu().numpy()),
            colors=(150, 150, 150),
            thickness=1.0,
            thickness_units="screen",
        )

    @torch.no_grad()
    def render(self, camera: Camera) -> Rendering:
        """What `camera` sees, on a white background."""
        return self.model.render(camera, background=BACKGROUND)
