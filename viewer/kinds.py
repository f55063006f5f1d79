"""Which layer a path opens as, decided from its contents, with errors that name the path."""

from __future__ import annotations

from pathlib import Path

from mp3d.viewer.layers import Layer

__all__ = ["CHECKPOINT_KINDS", "open_path", "ply_header", "ply_kind"]

MESH_SUFFIXES = (".obj", ".off", ".stl", ".glb", ".gltf")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
# Checkpoint format tags the viewer shows, and what they hold.
CHECKPOINT_KINDS = {
    "mp3d.nerf": "NeRF (mp3d nerf train)",
    "mp3d.dvr": "DVR/NeuS surface (mp3d dvr train)",
    "mp3d.splat": "Gaussian splats (mp3d splat train)",
}
SPLAT_PROPERTIES = {"f_dc_0", "opacity", "scale_0", "rot_0"}
MAX_HEADER_BYTES = 1 << 16


def ply_header(path: Path) -> dict[str, tuple[int, list[str]]]:
    """Element name -> (count, property names) from a PLY file's header; ValueError naming
    the file if it does not start with a PLY header."""
    with open(path, "rb") as file:
        head = file.read(MAX_HEADER_BYTES)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise ValueError(f"{path}: not a PLY file (no 'ply ... end_header' header)")
    elements: dict[str, tuple[int, list[str]]] = {}
    current = None
    for line in head[:end].decode("ascii", errors="replace").splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "element":
            try:
                current = words[1]
                elements[current] = (int(words[2]), [])
            except ValueError:
                raise ValueError(f"{path}: bad PLY element line {line!r}") from None
        elif words and words[0] == "property" and current is not None:
            elements[current][1].append(words[-1])
    return elements


def ply_kind(path: Path) -> str:
    """ "splats" (3DGS vertex properties), "mesh" (a face element with faces) or "points",
    from the PLY header alone; ValueError naming the file if it has no valid header."""
    elements = ply_header(path)
    if "vertex" not in elements:
        raise ValueError(f"{path}: PLY file without a vertex element")
    if SPLAT_PROPERTIES <= set(elements["vertex"][1]):
        return "splats"
    if elements.get("face", (0, []))[0] > 0:
        return "mesh"
    return "points"


def _npz_keys(path: Path) -> set[str]:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except zipfile.BadZipFile as error:
        raise ValueError(f"{path}: not an NPZ archive ({error})") from error


def open_path(path: str | Path, name: str) -> Layer:
    """The layer that shows `path`: a mesh, point cloud, splat PLY, NeRF/DVR/splat checkpoint,
    SMPL model file, body-fit folder or Blender/COLMAP dataset folder. FileNotFoundError or
    ValueError naming the path (and what was expected) otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if path.is_dir():
        return _open_folder(path, name)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        kind = ply_kind(path)
        if kind == "splats":
            from mp3d.viewer.splats import SplatLayer

            return SplatLayer.from_ply(path, name)
        if kind == "mesh":
            from mp3d.viewer.geometry import MeshLayer

            return MeshLayer.from_file(path, name)
        from mp3d.viewer.geometry import PointCloudLayer

        return PointCloudLayer.from_file(path, name)
    if suffix in MESH_SUFFIXES:
        from mp3d.viewer.geometry import MeshLayer

        return MeshLayer.from_file(path, name)
    if suffix == ".npz":
        keys = _npz_keys(path)
        if "v_template" in keys:
            from mp3d.viewer.bodies import BodyLayer

            return BodyLayer.from_model_file(path, name)
        from mp3d.viewer.geometry import PointCloudLayer

        return PointCloudLayer.from_file(path, name)
    if suffix == ".xyz":
        from mp3d.viewer.geometry import PointCloudLayer

        return PointCloudLayer.from_file(path, name)
    if suffix == ".pkl":
        from mp3d.viewer.bodies import BodyLayer

        return BodyLayer.from_model_file(path, name)
    if suffix in CHECKPOINT_SUFFIXES:
        return _open_checkpoint(path, name)
    raise ValueError(
        f"{path}: cannot show a {suffix or 'suffix-less'} file (expected a mesh "
        f"{', '.join(('.ply',) + MESH_SUFFIXES)}, a point cloud .ply/.npz/.xyz, a 3DGS .ply, "
        f"a checkpoint {'/'.join(CHECKPOINT_SUFFIXES)}, an SMPL model .pkl/.npz, or a folder)"
    )


def _open_checkpoint(path: Path, name: str) -> Layer:
    from mp3d.io import checkpoint_format

    fmt = checkpoint_format(path)
    if fmt in ("mp3d.nerf", "mp3d.dvr"):
        from mp3d.viewer.fields import FieldLayer

        return FieldLayer.from_checkpoint(path, name, fmt)
    if fmt == "mp3d.splat":
        from mp3d.viewer.splats import SplatLayer

        return SplatLayer.from_checkpoint(path, name)
    known = ", ".join(f"{tag} ({what})" for tag, what in CHECKPOINT_KINDS.items())
    raise ValueError(f"{path}: unknown checkpoint kind {fmt!r}; the viewer shows {known}")


def _open_folder(path: Path, name: str) -> Layer:
    if (path / "params.npz").is_file() and (path / "fit.json").is_file():
        from mp3d.viewer.bodies import FitLayer

        return FitLayer.from_folder(path, name)
    if (path / "transforms_train.json").is_file() or (path / "sparse" / "0").is_dir():
        from mp3d.viewer.datasets import DatasetLayer

        return DatasetLayer.from_folder(path, name)
    if (path / "checkpoint.pt").is_file():
        return _open_checkpoint(path / "checkpoint.pt", name)
    raise ValueError(
        f"{path}: not a folder the viewer knows (expected a Blender scene with "
        f"transforms_train.json, a COLMAP reconstruction with sparse/0, a body fit with "
        f"params.npz and fit.json, or a training run with checkpoint.pt)"
    )
