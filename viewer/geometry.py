"""Meshes (PLY/OBJ/OFF/STL/GLB, vertex colours when present) and point clouds (PLY/NPZ/XYZ,
colours when present), drawn in the browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mp3d.viewer.layers import Layer, bounds_of

__all__ = ["MeshLayer", "PointCloudLayer", "load_points"]

COLOUR_NAMES = (("red", "green", "blue"), ("r", "g", "b"))
DEFAULT_POINT_COLOUR = (90, 120, 200)
DEFAULT_MESH_COLOUR = (180, 180, 200)


def _colours_uint8(colours: np.ndarray, path: Path) -> np.ndarray:
    """Colours [N,3] as uint8: integers as they are (0..255), floats in [0,1] scaled."""
    colours = np.asarray(colours)
    if colours.ndim != 2 or colours.shape[1] < 3:
        raise ValueError(f"{path}: colours must have shape [N, 3], got {list(colours.shape)}")
    colours = colours[:, :3]
    if np.issubdtype(colours.dtype, np.floating):
        if not np.isfinite(colours).all():
            raise ValueError(f"{path}: colours must be finite")
        scale = 255.0 if colours.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(colours * scale + 0.5, 0, 255).astype(np.uint8)
    return np.clip(colours, 0, 255).astype(np.uint8)


def load_points(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(points [N,3] float32, colours [N,3] uint8 or None) of a point-cloud file: PLY (vertex
    x, y, z and optional red, green, blue), NPZ ("points", optional "colours"/"colors") or
    XYZ; ValueError naming the file if it does not parse."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"point cloud not found: {path}")
    colours = None
    suffix = path.suffix.lower()
    if suffix == ".ply":
        import plyfile

        try:
            vertex = plyfile.PlyData.read(str(path))["vertex"].data
        except (plyfile.PlyParseError, KeyError, ValueError) as error:
            raise ValueError(f"{path}: not a readable point-cloud PLY file ({error})") from error
        names = vertex.dtype.names
        if not {"x", "y", "z"} <= set(names):
            raise ValueError(f"{path}: vertices lack x, y, z (found {list(names)})")
        points = np.stack([vertex[n] for n in "xyz"], axis=1)
        for triple in COLOUR_NAMES:
            if set(triple) <= set(names):
                colours = np.stack([vertex[n] for n in triple], axis=1)
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                if "points" not in data:
                    raise ValueError(f"{path}: has no 'points' array (found {sorted(data)})")
                points = data["points"]
                for key in ("colours", "colors"):
                    if key in data:
                        colours = data[key]
        except (OSError, EOFError) as error:
            raise ValueError(f"{path}: not a readable NPZ file ({error})") from error
    else:
        from mp3d.data.point_clouds import load_point_cloud

        points, _ = load_point_cloud(path)
    points = np.asarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"{path}: points must have shape [N, 3], got {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ValueError(f"{path}: point coordinates must be finite")
    if colours is not None:
        if len(colours) != len(points):
            raise ValueError(
                f"{path}: {len(colours)} colours for {len(points)} points (expected one each)"
            )
        colours = _colours_uint8(colours, path)
    return points, colours


class PointCloudLayer(Layer):
    """Points [N,3] with per-point colours (uint8) or one colour, drawn as squares."""

    kind = "point cloud"

    def __init__(self, path, name, points: np.ndarray, colours: np.ndarray | None) -> None:
        super().__init__(path, name)
        self.points = np.asarray(points, dtype=np.float32)
        self.colours = colours

    @classmethod
    def from_file(cls, path: str | Path, name: str) -> PointCloudLayer:
        """The point cloud in a PLY/NPZ/XYZ file."""
        return cls(path, name, *load_points(path))

    def bounds(self) -> np.ndarray | None:
        return bounds_of(self.points)

    def point_size(self) -> float:
        """A point size (world units) of about 1/300 of the cloud's diagonal."""
        box = self.bounds()
        diagonal = float(np.linalg.norm(box[1] - box[0])) if box is not None else 1.0
        return max(diagonal, 1e-6) / 300.0

    def attach(self, server) -> None:
        super().attach(server)
        colours = self.colours if self.colours is not None else DEFAULT_POINT_COLOUR
        self.handle = server.scene.add_point_cloud(
            f"{self.name}/points", self.points, colours, point_size=self.point_size()
        )


class MeshLayer(Layer):
    """A triangle mesh (trimesh.Trimesh); vertex colours are kept when the file has them."""

    kind = "mesh"

    def __init__(self, path, name, mesh) -> None:
        super().__init__(path, name)
        self.mesh = mesh

    @classmethod
    def from_file(cls, path: str | Path, name: str) -> MeshLayer:
        """The mesh in an OBJ/PLY/OFF/STL/GLB/GLTF file (mp3d.mesh.files.load_mesh)."""
        from mp3d.mesh.files import load_mesh

        return cls(path, name, load_mesh(path))

    def bounds(self) -> np.ndarray | None:
        return bounds_of(self.mesh.vertices)

    def has_vertex_colours(self) -> bool:
        """Whether the mesh carries per-vertex colours (not trimesh's default grey)."""
        visual = self.mesh.visual
        if getattr(visual, "kind", None) != "vertex":
            return False
        colours = np.asarray(visual.vertex_colors)
        return len(colours) == len(self.mesh.vertices) and len(np.unique(colours, axis=0)) > 1

    def attach(self, server) -> None:
        super().attach(server)
        vertices = np.asarray(self.mesh.vertices, dtype=np.float32)
        faces = np.asarray(self.mesh.faces, dtype=np.uint32)
        if self.has_vertex_colours():
            self.handle = server.scene.add_mesh_trimesh(f"{self.name}/mesh", self.mesh)
        else:
            self.handle = server.scene.add_mesh_simple(
                f"{self.name}/mesh", vertices, faces, color=DEFAULT_MESH_COLOUR
            )
