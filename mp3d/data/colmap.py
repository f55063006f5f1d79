"""Reader and writer for COLMAP reconstructions: ``ROOT/images/*`` plus ``ROOT/sparse/0``.

The model folder holds ``cameras``, ``images`` and ``points3D`` as ``.bin`` (preferred) or
``.txt``, in COLMAP's own layouts (little-endian binary). COLMAP already uses mp3d's camera
convention: each image stores a world-to-camera rotation (quaternion w-first) and translation
with OpenCV axes, and pixel centres sit at +0.5. Images are assumed undistorted, as COLMAP's
``image_undistorter`` produces them: the radial/OpenCV models are read for their focal
lengths and principal point only, and their distortion is ignored with a warning.
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mp3d.cameras import invert_rigid
from mp3d.data.views import PosedViews, read_image
from mp3d.io import atomic_path
from mp3d.transforms import matrix_to_quaternion, quaternion_to_matrix

# name -> (COLMAP model id, number of parameters), for the models this reader understands.
SUPPORTED_MODELS = {
    "SIMPLE_PINHOLE": (0, 3),
    "PINHOLE": (1, 4),
    "SIMPLE_RADIAL": (2, 4),
    "RADIAL": (3, 5),
    "OPENCV": (4, 8),
}
_MODEL_NAMES = {model_id: name for name, (model_id, _) in SUPPORTED_MODELS.items()} | {
    5: "OPENCV_FISHEYE",
    6: "FULL_OPENCV",
    7: "FOV",
    8: "SIMPLE_RADIAL_FISHEYE",
    9: "RADIAL_FISHEYE",
    10: "THIN_PRISM_FISHEYE",
    11: "RAD_TAN_THIN_PRISM_FISHEYE",
}
_MODEL_FILES = ("cameras", "images", "points3D")
_IMAGE_LINE = "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME"
_POINT_LINE = "POINT3D_ID X Y Z R G B ERROR [IMAGE_ID POINT2D_IDX ...]"
_CAMERA_LINE = "CAMERA_ID MODEL WIDTH HEIGHT PARAMS..."
_MAX_POINTS_FOR_BOUNDS = 20000
MIN_QUATERNION_NORM = 1e-6  # image quaternions shorter than this are no rotation


@dataclass
class ColmapScene(PosedViews):
    """Posed images of a COLMAP reconstruction, sorted by name, and its sparse points."""

    images: torch.Tensor  # [N,H,W,3] float32 RGB in [0,1]
    Ks: torch.Tensor  # [N,3,3] pixels
    c2ws: torch.Tensor  # [N,4,4], OpenCV axes
    names: list[str]  # image names as COLMAP stores them (relative to the images folder)
    points: torch.Tensor  # [P,3] float32
    colours: torch.Tensor  # [P,3] float32 in [0,1]
    near: float
    far: float
    aabb: torch.Tensor  # [6] min xyz, max xyz


@dataclass
class _CameraModel:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


@dataclass
class _ImagePose:
    name: str
    quat: tuple[float, float, float, float]  # w, x, y, z
    translation: tuple[float, float, float]
    camera_id: int


# --- model files ------------------------------------------------------------------------------


def _model_paths(root: Path) -> tuple[Path, Path, Path]:
    """Paths of cameras, images, points3D: the complete .bin set, else the complete .txt set."""
    sparse = root / "sparse" / "0"
    if not sparse.is_dir():
        raise FileNotFoundError(f"COLMAP model folder not found: {sparse}")
    for suffix in (".bin", ".txt"):
        paths = tuple(sparse / f"{name}{suffix}" for name in _MODEL_FILES)
        if all(path.is_file() for path in paths):
            return paths
    suffix = ".bin" if any((sparse / f"{n}.bin").is_file() for n in _MODEL_FILES) else ".txt"
    missing = next(p for n in _MODEL_FILES if not (p := sparse / f"{n}{suffix}").is_file())
    raise FileNotFoundError(
        f"COLMAP model file not found: {missing} (expected cameras, images and points3D, "
        "all .bin or all .txt)"
    )


def _check_model(name: str, where: str) -> None:
    if name not in SUPPORTED_MODELS:
        raise ValueError(
            f"{where}: camera model {name} is not supported (expected one of "
            f"{', '.join(SUPPORTED_MODELS)})"
        )


def _camera_from_params(
    name: str, width: int, height: int, params: list[float], where: str
) -> _CameraModel:
    """Pinhole part (focal lengths, principal point) of a supported camera model's parameters,
    checked: width and height >= 1, focal lengths finite and > 0, principal point finite."""
    _check_model(name, where)
    expected = SUPPORTED_MODELS[name][1]
    if len(params) != expected:
        raise ValueError(
            f"{where}: camera model {name} needs {expected} parameters, got {len(params)}"
        )
    if width < 1 or height < 1:
        raise ValueError(
            f"{where}: camera width and height must be >= 1 pixel, got {width}x{height}"
        )
    if name in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        f, cx, cy = params[:3]
        fx = fy = f
    else:
        fx, fy, cx, cy = params[:4]
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
        raise ValueError(
            f"{where}: camera focal lengths must be finite and > 0, got {fx!r}, {fy!r}"
        )
    if not (math.isfinite(cx) and math.isfinite(cy)):
        raise ValueError(f"{where}: camera principal point must be finite, got {cx!r}, {cy!r}")
    return _CameraModel(width, height, fx, fy, cx, cy)


def _check_pose(pose: _ImagePose, where: str) -> _ImagePose:
    """`pose` if its quaternion is finite and not zero and its translation finite;
    ValueError starting with `where` otherwise."""
    norm = (
        math.sqrt(sum(q * q for q in pose.quat)) if all(map(math.isfinite, pose.quat)) else math.nan
    )
    if not norm > MIN_QUATERNION_NORM:
        raise ValueError(
            f"{where}: image {pose.name}: quaternion QW QX QY QZ must be finite and "
            f"non-zero (a rotation), got {list(pose.quat)}"
        )
    if not all(map(math.isfinite, pose.translation)):
        raise ValueError(
            f"{where}: image {pose.name}: translation TX TY TZ must be finite, "
            f"got {list(pose.translation)}"
        )
    return pose


def _warn_distortion(models: set[str], path: Path) -> None:
    distorted = sorted(models - {"SIMPLE_PINHOLE", "PINHOLE"})
    if distorted:
        warnings.warn(
            f"{path}: distortion of camera model(s) {', '.join(distorted)} is ignored; "
            "images are assumed undistorted (run COLMAP's image_undistorter first)",
            stacklevel=2,
        )


class _BinaryCursor:
    """Reads little-endian values from a file's bytes, naming the file when it runs short."""

    def __init__(self, path: Path):
        self.path = path
        self.data = path.read_bytes()
        self.offset = 0

    def read(self, fmt: str) -> tuple:
        start = self.offset
        self.skip(struct.calcsize("<" + fmt))
        return struct.unpack_from("<" + fmt, self.data, start)

    def skip(self, size: int) -> None:
        if self.offset + size > len(self.data):
            raise ValueError(
                f"{self.path}: truncated at byte {self.offset}: expected {size} "
                f"more bytes, file has {len(self.data) - self.offset}"
            )
        self.offset += size

    def read_name(self) -> str:
        end = self.data.find(b"\0", self.offset)
        if end < 0:
            raise ValueError(
                f"{self.path}: truncated at byte {self.offset}: expected a "
                "null-terminated image name"
            )
        try:
            name = self.data[self.offset : end].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(
                f"{self.path}: image name at byte {self.offset} is not UTF-8"
            ) from None
        self.offset = end + 1
        return name

    def finish(self) -> None:
        if self.offset != len(self.data):
            raise ValueError(
                f"{self.path}: {len(self.data) - self.offset} unexpected bytes "
                f"after the last record (at byte {self.offset})"
            )


def _read_cameras_bin(path: Path) -> dict[int, _CameraModel]:
    """cameras.bin -> {camera id: pinhole model}."""
    cursor = _BinaryCursor(path)
    cameras, models = {}, set()
    for _ in range(cursor.read("Q")[0]):
        camera_id, model_id, width, height = cursor.read("iiQQ")
        name = _MODEL_NAMES.get(model_id, f"with unknown id {model_id}")
        _check_model(name, str(path))
        params = list(cursor.read(f"{SUPPORTED_MODELS[name][1]}d"))
        cameras[camera_id] = _camera_from_params(
            name, width, height, params, f"{path}: camera {camera_id}"
        )
        models.add(name)
    cursor.finish()
    _warn_distortion(models, path)
    return cameras


def _read_images_bin(path: Path) -> list[_ImagePose]:
    """images.bin -> poses and names (2D observations are skipped)."""
    cursor = _BinaryCursor(path)
    poses = []
    for index in range(cursor.read("Q")[0]):
        _, qw, qx, qy, qz, tx, ty, tz, camera_id = cursor.read("i7di")
        name = cursor.read_name()
        cursor.skip(24 * cursor.read("Q")[0])  # points2D: x, y doubles + int64 point3D id
        pose = _ImagePose(name, (qw, qx, qy, qz), (tx, ty, tz), camera_id)
        poses.append(_check_pose(pose, f"{path}: record {index}"))
    cursor.finish()
    return poses


def _read_points_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """points3D.bin -> xyz float64 [P,3], rgb uint8 [P,3] (tracks are skipped)."""
    cursor = _BinaryCursor(path)
    count = cursor.read("Q")[0]
    xyz, rgb = [], []
    for _ in range(count):
        point_id, x, y, z, r, g, b, _, track_length = cursor.read("Q3d3BdQ")
        cursor.skip(8 * track_length)  # track: int32 image id + int32 point2D index
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            raise ValueError(f"{path}: point {point_id}: X Y Z must be finite, got {[x, y, z]}")
        xyz.append((x, y, z))
        rgb.append((r, g, b))
    cursor.finish()
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3)


def _data_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a COLMAP text file, comments dropped, blank lines kept."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.lstrip().startswith("#"):
            yield number, line.strip()


def _parse_numbers(
    path: Path, number: int, line: str, tokens: list[str], expected: str, kind=float
) -> list:
    try:
        return [kind(token) for token in tokens]
    except ValueError:
        raise ValueError(f"{path}: line {number}: expected '{expected}', got {line!r}") from None


def _read_cameras_txt(path: Path) -> dict[int, _CameraModel]:
    """cameras.txt -> {camera id: pinhole model}."""
    cameras, models = {}, set()
    for number, line in _data_lines(path):
        if not line:
            continue
        tokens = line.split()
        if len(tokens) < 4:
            raise ValueError(f"{path}: line {number}: expected '{_CAMERA_LINE}', got {line!r}")
        camera_id, width, height = _parse_numbers(
            path, number, line, [tokens[0], tokens[2], tokens[3]], _CAMERA_LINE, int
        )
        params = _parse_numbers(path, number, line, tokens[4:], _CAMERA_LINE)
        cameras[camera_id] = _camera_from_params(
            tokens[1], width, height, params, f"{path}: line {number}"
        )
        models.add(tokens[1])
    _warn_distortion(models, path)
    return cameras


def _read_images_txt(path: Path) -> list[_ImagePose]:
    """images.txt -> poses and names; each pose line is followed by a (maybe empty) 2D line."""
    poses = []
    lines = _data_lines(path)
    for number, line in lines:
        if not line:
            continue
        tokens = line.split(maxsplit=9)
        if len(tokens) != 10:
            raise ValueError(f"{path}: line {number}: expected '{_IMAGE_LINE}', got {line!r}")
        values = _parse_numbers(path, number, line, tokens[1:8], _IMAGE_LINE)
        camera_id = _parse_numbers(path, number, line, tokens[8:9], _IMAGE_LINE, int)[0]
        pose = _ImagePose(tokens[9], tuple(values[:4]), tuple(values[4:]), camera_id)
        poses.append(_check_pose(pose, f"{path}: line {number}"))
        _skip_points2d_line(path, next(lines, (number + 1, "")))
    return poses


def _skip_points2d_line(path: Path, numbered_line: tuple[int, str]) -> None:
    """Checks the (unused) 2D observation line that follows an image line."""
    number, line = numbered_line
    # An image line has 10 fields, so this also catches a missing observation line.
    if len(line.split()) % 3:
        raise ValueError(
            f"{path}: line {number}: expected the image's 2D points "
            f"'X Y POINT3D_ID ...' (or an empty line), got {line!r}"
        )


def _read_points_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """points3D.txt -> xyz float64 [P,3], rgb uint8 [P,3]."""
    xyz, rgb = [], []
    for number, line in _data_lines(path):
        if not line:
            continue
        tokens = line.split()
        if len(tokens) < 8 or len(tokens) % 2:
            raise ValueError(f"{path}: line {number}: expected '{_POINT_LINE}', got {line!r}")
        position = _parse_numbers(path, number, line, tokens[1:4], _POINT_LINE)
        if not all(map(math.isfinite, position)):
            raise ValueError(f"{path}: line {number}: X Y Z must be finite, got {line!r}")
        xyz.append(position)
        colour = _parse_numbers(path, number, line, tokens[4:7], _POINT_LINE, int)
        if not all(0 <= c <= 255 for c in colour):
            raise ValueError(
                f"{path}: line {number}: colour must be 3 integers in [0, 255], got {line!r}"
            )
        rgb.append(colour)
    return np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, np.uint8).reshape(-1, 3)


def _read_model(
    cameras_path: Path, images_path: Path, points_path: Path
) -> tuple[dict[int, _CameraModel], list[_ImagePose], np.ndarray, np.ndarray]:
    """Cameras by id, image poses, point xyz [P,3] and rgb [P,3] of one model's three files."""
    if cameras_path.suffix == ".bin":
        cameras, poses = _read_cameras_bin(cameras_path), _read_images_bin(images_path)
        xyz, rgb = _read_points_bin(points_path)
    else:
        cameras, poses = _read_cameras_txt(cameras_path), _read_images_txt(images_path)
        xyz, rgb = _read_points_txt(points_path)
    if not poses:
        raise ValueError(f"{images_path}: lists no images")
    for pose in poses:
        if pose.camera_id not in cameras:
            raise ValueError(
                f"{images_path}: image {pose.name} uses camera {pose.camera_id}, "
                f"which {cameras_path} does not define"
            )
    return cameras, poses, xyz, rgb


# --- images and bounds ------------------------------------------------------------------------


def _image_scale(camera: _CameraModel, size: tuple[int, int], path: Path) -> float:
    """Scale from the camera's pixels to the file's (1 unless images_dir holds resized copies)."""
    scale = size[0] / camera.width
    if abs(camera.height * scale - size[1]) > 1.0:
        raise ValueError(
            f"{path}: image size {size[0]}x{size[1]} does not match its COLMAP camera's "
            f"{camera.width}x{camera.height} (nor a uniformly resized copy of it)"
        )
    return scale


def _depth_bounds(points: np.ndarray, viewmats: np.ndarray, path: Path) -> tuple[float, float]:
    """near, far: 0.5x the 1st and 1.5x the 99th percentile of the points' positive depths."""
    stride = max(1, len(points) // _MAX_POINTS_FOR_BOUNDS)
    sample = points[::stride]
    depths = np.einsum("nj,pj->np", viewmats[:, 2, :3], sample) + viewmats[:, 2, 3:]
    depths = depths[depths > 0]
    if depths.size == 0:
        raise ValueError(f"{path}: needs 3D points in front of the cameras to estimate near/far")
    low, high = np.percentile(depths, [1.0, 99.0])
    return 0.5 * float(low), 1.5 * float(high)


def _points_aabb(points: np.ndarray, margin: float = 0.1) -> torch.Tensor:
    """Box [6] around the 1st..99th percentile of points [P,3] per axis, grown by `margin`."""
    low, high = np.percentile(points, [1.0, 99.0], axis=0)
    pad = margin * (high - low)
    return torch.tensor(np.concatenate([low - pad, high + pad]), dtype=torch.float32)


# --- loading ----------------------------------------------------------------------------------


def _viewmats(poses: list[_ImagePose]) -> np.ndarray:
    """World-to-camera [N,4,4] float64 from the poses' quaternions and translations."""
    viewmats = np.tile(np.eye(4), (len(poses), 1, 1))
    quats = torch.tensor([pose.quat for pose in poses], dtype=torch.float64)
    viewmats[:, :3, :3] = quaternion_to_matrix(quats).numpy()
    viewmats[:, :3, 3] = np.array([pose.translation for pose in poses])
    return viewmats


def load_colmap(
    root: str | Path,
    downscale: int = 1,
    images_dir: str | Path | None = None,
    progress: bool = True,
) -> ColmapScene:
    """Loads ROOT/sparse/0 (binary preferred over text) and the images it lists, sorted by name.

    images_dir: folder of the images (default ROOT/images); it may hold uniformly resized
    copies, and K follows the files' size. downscale: integer factor, area averaging.
    Cameras must be undistorted (see the module docstring); all images must share one size.
    """
    root = Path(root)
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise ValueError(f"downscale must be an int >= 1, got {downscale!r}")
    model_paths = _model_paths(root)
    cameras, poses, xyz, rgb = _read_model(*model_paths)
    if len(xyz) == 0:
        raise ValueError(
            f"{model_paths[2]}: holds no 3D points; needs some "
            "to estimate near/far and the bounding box"
        )
    poses = sorted(poses, key=lambda pose: pose.name)
    folder = Path(images_dir) if images_dir is not None else root / "images"
    paths = [folder / pose.name for pose in poses]
    missing = "image listed in the COLMAP model not found"
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = list(
            tqdm(
                pool.map(lambda p: read_image(p, "RGB", downscale, missing), paths),
                total=len(paths),
                desc="reading COLMAP views",
                disable=not progress,
                leave=False,
            )
        )
    first_size = loaded[0][1]
    Ks = []
    for (_, size), path, pose in zip(loaded, paths, poses):
        if size != first_size:
            raise ValueError(
                f"{path}: image size {size[0]}x{size[1]} differs from the first "
                f"view's {first_size[0]}x{first_size[1]}"
            )
        camera = cameras[pose.camera_id]
        scale = _image_scale(camera, size, path) / downscale
        Ks.append(
            [
                [camera.fx * scale, 0.0, camera.cx * scale],
                [0.0, camera.fy * scale, camera.cy * scale],
                [0.0, 0.0, 1.0],
            ]
        )
    viewmats = _viewmats(poses)
    near, far = _depth_bounds(xyz, viewmats, model_paths[2])
    return ColmapScene(
        images=torch.from_numpy(np.stack([image for image, _ in loaded])).clamp_(0.0, 1.0),
        Ks=torch.tensor(Ks, dtype=torch.float32),
        c2ws=invert_rigid(torch.from_numpy(viewmats)).float(),
        names=[pose.name for pose in poses],
        points=torch.from_numpy(xyz).float(),
        colours=torch.from_numpy(rgb).float() / 255.0,
        near=near,
        far=far,
        aabb=_points_aabb(xyz),
    )


# --- writing ----------------------------------------------------------------------------------


def _as_array(value, name: str, shape: tuple) -> np.ndarray:
    """float64 array of `value`, checked against `shape` (None matches any size)."""
    array = (
        value.detach().cpu().double().numpy()
        if isinstance(value, torch.Tensor)
        else np.asarray(value, dtype=np.float64)
    )
    matches = all(s is None or s == a for s, a in zip(shape, array.shape))
    if array.ndim != len(shape) or not matches:
        expected = ", ".join("N" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape [{expected}], got {list(array.shape)}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite")
    return array


def _model_to_write(Ks, viewmats, names, width, height, points, colours):
    """Validated arrays: pinhole params [N,4], quats [N,4], translations [N,3], xyz, rgb uint8."""
    Ks = _as_array(Ks, "Ks", (None, 3, 3))
    viewmats = _as_array(viewmats, "viewmats", (len(Ks), 4, 4))
    points = _as_array(points, "points", (None, 3))
    colours = _as_array(colours, "colours", (len(points), 3))
    names = [str(name) for name in names]
    if len(names) != len(Ks) or len(set(names)) != len(names):
        raise ValueError(f"names must be {len(Ks)} distinct image names, got {len(names)}")
    if any(not name or any(c.isspace() or c == "\0" for c in name) for name in names):
        raise ValueError("image names must be non-empty, without whitespace or NUL")
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise ValueError(f"width and height must be >= 1, got {width}x{height}")
    params = np.stack([Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2]], axis=-1)
    rgb = np.clip(np.rint(colours * 255.0), 0, 255).astype(np.uint8)
    quats = matrix_to_quaternion(torch.from_numpy(viewmats[:, :3, :3])).numpy()
    return params, quats, viewmats[:, :3, 3], names, points, rgb


def write_colmap_text(
    root: str | Path,
    Ks,
    viewmats,
    names: list[str],
    width: int,
    height: int,
    points,
    colours,
) -> Path:
    """Writes ROOT/sparse/0/{cameras,images,points3D}.txt: one PINHOLE camera per image.

    Ks [N,3,3] (skew dropped), viewmats [N,4,4] world-to-camera, points [P,3], colours [P,3]
    in [0,1]; no 2D observations or tracks. Returns the model folder.
    """
    params, quats, translations, names, points, rgb = _model_to_write(
        Ks, viewmats, names, width, height, points, colours
    )
    sparse = Path(root) / "sparse" / "0"
    cameras = [
        f"{i + 1} PINHOLE {width} {height} " + " ".join(map(repr, map(float, p)))
        for i, p in enumerate(params)
    ]
    _write_text(
        sparse / "cameras.txt",
        [
            "# Camera list with one line of data per camera:",
            "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]",
            f"# Number of cameras: {len(params)}",
        ]
        + cameras,
    )
    images = []
    for i, (q, t, name) in enumerate(zip(quats, translations, names)):
        values = " ".join(map(repr, map(float, [*q, *t])))
        images += [f"{i + 1} {values} {i + 1} {name}", ""]
    _write_text(
        sparse / "images.txt",
        [
            "# Image list with two lines of data per image:",
            "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
            "#   POINTS2D[] as (X, Y, POINT3D_ID)",
            f"# Number of images: {len(names)}, mean observations per image: 0",
        ]
        + images,
    )
    points_lines = [
        f"{i + 1} "
        + " ".join(map(repr, map(float, xyz)))
        + " "
        + " ".join(map(str, colour))
        + " 0.0"
        for i, (xyz, colour) in enumerate(zip(points, rgb))
    ]
    _write_text(
        sparse / "points3D.txt",
        [
            "# 3D point list with one line of data per point:",
            "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
            f"# Number of points: {len(points)}, mean track length: 0",
        ]
        + points_lines,
    )
    return sparse


def _write_text(path: Path, lines: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def write_colmap_binary(
    root: str | Path,
    Ks,
    viewmats,
    names: list[str],
    width: int,
    height: int,
    points,
    colours,
) -> Path:
    """Writes ROOT/sparse/0/{cameras,images,points3D}.bin; arguments as write_colmap_text."""
    params, quats, translations, names, points, rgb = _model_to_write(
        Ks, viewmats, names, width, height, points, colours
    )
    sparse = Path(root) / "sparse" / "0"
    pinhole = SUPPORTED_MODELS["PINHOLE"][0]
    cameras = [struct.pack("<Q", len(params))] + [
        struct.pack("<iiQQ4d", i + 1, pinhole, width, height, *p) for i, p in enumerate(params)
    ]
    _write_bytes(sparse / "cameras.bin", cameras)
    images = [struct.pack("<Q", len(names))] + [
        struct.pack("<i7di", i + 1, *q, *t, i + 1)
        + name.encode("utf-8")
        + b"\0"
        + struct.pack("<Q", 0)
        for i, (q, t, name) in enumerate(zip(quats, translations, names))
    ]
    _write_bytes(sparse / "images.bin", images)
    points_bytes = [struct.pack("<Q", len(points))] + [
        struct.pack("<Q3d3BdQ", i + 1, *xyz, *colour, 0.0, 0)
        for i, (xyz, colour) in enumerate(zip(points, rgb))
    ]
    _write_bytes(sparse / "points3D.bin", points_bytes)
    return sparse


def _write_bytes(path: Path, chunks: list[bytes]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(chunks))
