"""COLMAP reader and writer on a generated reconstruction: round trips, models, bad files."""

from __future__ import annotations

import shutil
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mp3d.cameras import intrinsics, invert_rigid, look_at, project
from mp3d.data.colmap import load_colmap, write_colmap_binary, write_colmap_text

WIDTH, HEIGHT = 32, 24


def _draw(points: torch.Tensor, colours: torch.Tensor, viewmat: torch.Tensor, K: torch.Tensor):
    """Image [H,W,3]: each point a pixel of its colour on black, nearer points drawn last."""
    uv, depth = project(points, viewmat, K)
    image = torch.zeros(HEIGHT, WIDTH, 3)
    for j in torch.argsort(depth, descending=True).tolist():
        col, row = int(uv[j, 0].floor()), int(uv[j, 1].floor())
        image[row, col] = colours[j]
    return image


def _synthetic(seed: int = 0) -> dict:
    """Four cameras around 40 random points in [-1,1]^3, all points inside every view."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(40, 3, generator=g, dtype=torch.float64) * 2 - 1
    colours = torch.randint(0, 256, (40, 3), generator=g).double() / 255
    angles = torch.tensor([0.3, 1.9, 3.4, 5.0], dtype=torch.float64)
    eyes = torch.stack([5 * angles.cos(), 5 * angles.sin(), 1.5 + 0.3 * angles.sin()], dim=-1)
    viewmats = look_at(eyes, torch.zeros(3, dtype=torch.float64))
    Ks = torch.stack(
        [
            intrinsics(12.0 + i, 11.0 + i, 16.0 - 0.5 * i, 12.0 + 0.25 * i, dtype=torch.float64)
            for i in range(4)
        ]
    )
    names = [f"view_{i}.png" for i in (3, 1, 0, 2)]  # not in sorted order
    images = [_draw(points, colours, viewmats[i], Ks[i]) for i in range(4)]
    return {
        "points": points,
        "colours": colours,
        "viewmats": viewmats,
        "Ks": Ks,
        "names": names,
        "images": images,
    }


def _write_images(folder: Path, data: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in zip(data["names"], data["images"]):
        Image.fromarray((image.numpy() * 255).round().astype(np.uint8)).save(folder / name)


def _write(root: Path, data: dict, writer=write_colmap_text) -> Path:
    _write_images(root / "images", data)
    writer(
        root,
        data["Ks"],
        data["viewmats"],
        data["names"],
        WIDTH,
        HEIGHT,
        data["points"],
        data["colours"],
    )
    return root


@pytest.fixture(scope="module")
def data() -> dict:
    return _synthetic()


@pytest.fixture
def text_root(tmp_path, data) -> Path:
    return _write(tmp_path / "text", data)


@pytest.fixture
def bin_root(tmp_path, data) -> Path:
    return _write(tmp_path / "bin", data, write_colmap_binary)


@pytest.mark.parametrize("root_name", ["text_root", "bin_root"])
def test_round_trip_matches_what_was_written(request, data, root_name):
    scene = load_colmap(request.getfixturevalue(root_name), progress=False)
    assert scene.names == sorted(data["names"])
    assert scene.images.shape == (4, HEIGHT, WIDTH, 3) and scene.images.dtype == torch.float32
    assert (scene.width, scene.height, len(scene)) == (WIDTH, HEIGHT, 4)
    order = [data["names"].index(name) for name in scene.names]
    torch.testing.assert_close(scene.Ks, data["Ks"][order].float())
    torch.testing.assert_close(
        scene.c2ws, invert_rigid(data["viewmats"][order]).float(), atol=1e-6, rtol=0
    )
    torch.testing.assert_close(scene.points, data["points"].float())
    torch.testing.assert_close(scene.colours, data["colours"].float())
    for i, j in enumerate(order):
        torch.testing.assert_close(scene.images[i], data["images"][j], atol=1 / 510, rtol=0)


def test_text_and_binary_agree(text_root, bin_root):
    text = load_colmap(text_root, progress=False)
    binary = load_colmap(bin_root, progress=False)
    assert text.names == binary.names
    for field in ("images", "Ks", "c2ws", "points", "colours", "aabb"):
        torch.testing.assert_close(getattr(text, field), getattr(binary, field), atol=1e-6, rtol=0)
    assert (text.near, text.far) == pytest.approx((binary.near, binary.far))


def test_points_project_where_drawn(bin_root):
    scene = load_colmap(bin_root, progress=False)
    for i in range(len(scene)):
        camera = scene.camera(i)
        uv, depth = project(scene.points, camera.viewmat, camera.K)
        assert bool((depth > 0).all())
        assert bool(((uv >= 0) & (uv < torch.tensor([WIDTH, HEIGHT]))).all())
        redrawn = _draw(scene.points, scene.colours, camera.viewmat, camera.K)
        torch.testing.assert_close(scene.images[i], redrawn, atol=1 / 510, rtol=0)


def test_subset_and_images_dir(text_root, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    shutil.move(text_root / "images", elsewhere)
    scene = load_colmap(text_root, images_dir=elsewhere, progress=False)
    part = scene.subset([2, 0])
    assert part.names == [scene.names[2], scene.names[0]]
    torch.testing.assert_close(part.c2ws, scene.c2ws[[2, 0]])
    torch.testing.assert_close(part.camera(0).viewmat, scene.camera(2).viewmat)
    assert part.points is scene.points and (part.near, part.far) == (scene.near, scene.far)


def test_binary_preferred_over_text(tmp_path, data):
    root = _write(tmp_path / "s", data)
    write_colmap_binary(
        root,
        data["Ks"] * torch.tensor([[2.0], [2.0], [1.0]], dtype=torch.float64),
        data["viewmats"],
        data["names"],
        WIDTH,
        HEIGHT,
        data["points"],
        data["colours"],
    )
    scene = load_colmap(root, progress=False)
    assert float(scene.Ks[0, 0, 0]) == pytest.approx(2 * float(data["Ks"][2, 0, 0]))


def _replace_cameras(root: Path, lines: list[str]) -> None:
    (root / "sparse" / "0" / "cameras.txt").write_text("# by hand\n" + "\n".join(lines) + "\n")


def test_simple_pinhole_and_opencv(text_root, data):
    simple = [f"{i + 1} SIMPLE_PINHOLE {WIDTH} {HEIGHT} 20 15.5 11.5" for i in range(4)]
    _replace_cameras(text_root, simple)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scene = load_colmap(text_root, progress=False)
    torch.testing.assert_close(scene.Ks[1], intrinsics(20.0, 20.0, 15.5, 11.5))

    opencv = [
        f"{i + 1} OPENCV {WIDTH} {HEIGHT} 20 21 15.5 11.5 0.1 -0.01 0.001 0.002" for i in range(4)
    ]
    _replace_cameras(text_root, opencv)
    with pytest.warns(UserWarning, match="cameras.txt: distortion of camera model.*OPENCV"):
        scene = load_colmap(text_root, progress=False)
    torch.testing.assert_close(scene.Ks[3], intrinsics(20.0, 21.0, 15.5, 11.5))


def test_binary_with_observations_and_tracks(tmp_path, data):
    """Hand-packed COLMAP binary files with 2D points and tracks, which the writer leaves empty."""
    root = tmp_path / "s"
    _write_images(root / "images", data)
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True)
    (sparse / "cameras.bin").write_bytes(
        struct.pack("<Q", 1) + struct.pack("<iiQQ4d", 7, 2, WIDTH, HEIGHT, 14.0, 16.0, 12.0, 0.2)
    )
    images = struct.pack("<Q", 4)
    half = 0.5**0.5
    for i, name in enumerate(data["names"]):
        quat = (half, 0, 0, half) if i == 0 else (1, 0, 0, 0)  # 90 degrees about z, identity
        images += struct.pack("<i7di", 10 + i, *quat, 0, 0, 5.0 + i, 7) + name.encode() + b"\0"
        images += struct.pack("<Q", 2) + struct.pack("<2dq2dq", 1.5, 2.5, 1, 3.5, 4.5, -1)
    (sparse / "images.bin").write_bytes(images)
    points = struct.pack("<Q", 2)
    points += struct.pack("<Q3d3BdQ", 1, 0.1, 0.2, 0.3, 255, 0, 51, 0.5, 2)
    points += struct.pack("<4i", 10, 0, 11, 0)
    points += struct.pack("<Q3d3BdQ", 2, -0.1, 0.0, 0.5, 0, 255, 0, 0.5, 0)
    (sparse / "points3D.bin").write_bytes(points)
    with pytest.warns(UserWarning, match="SIMPLE_RADIAL"):
        scene = load_colmap(root, progress=False)
    torch.testing.assert_close(scene.Ks[0], intrinsics(14.0, 14.0, 16.0, 12.0))
    torch.testing.assert_close(scene.c2ws[2, :3, 3], torch.tensor([0.0, 0.0, -8.0]))
    turn = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # world-to-camera
    torch.testing.assert_close(scene.c2ws[3, :3, :3], turn.T)  # view_3, the first written
    torch.testing.assert_close(scene.points, torch.tensor([[0.1, 0.2, 0.3], [-0.1, 0.0, 0.5]]))
    torch.testing.assert_close(scene.colours, torch.tensor([[1.0, 0.0, 0.2], [0.0, 1.0, 0.0]]))


def test_binary_layout(bin_root, data):
    sparse = bin_root / "sparse" / "0"
    cameras = (sparse / "cameras.bin").read_bytes()
    assert len(cameras) == 8 + 4 * (4 + 4 + 8 + 8 + 4 * 8)
    assert struct.unpack_from("<QiiQQ4d", cameras) == (
        4,
        1,
        1,
        WIDTH,
        HEIGHT,
        *data["Ks"][0, [0, 1, 0, 1], [0, 1, 2, 2]].tolist(),
    )
    names = sum(len(name) + 1 for name in data["names"])
    assert len((sparse / "images.bin").read_bytes()) == 8 + 4 * (4 + 7 * 8 + 4 + 8) + names
    assert len((sparse / "points3D.bin").read_bytes()) == 8 + 40 * (8 + 3 * 8 + 3 + 8 + 8)


def test_downscale_averages_blocks(bin_root):
    full = load_colmap(bin_root, progress=False)
    half = load_colmap(bin_root, downscale=2, progress=False)
    assert half.images.shape == (4, HEIGHT // 2, WIDTH // 2, 3)
    blocks = full.images.reshape(4, HEIGHT // 2, 2, WIDTH // 2, 2, 3).mean(dim=(2, 4))
    torch.testing.assert_close(half.images, blocks, atol=1e-6, rtol=0)
    torch.testing.assert_close(half.Ks[:, :2], full.Ks[:, :2] / 2)
    torch.testing.assert_close(half.Ks[:, 2], full.Ks[:, 2])


def test_resized_images_dir_scales_K(bin_root, tmp_path, data):
    small = tmp_path / "images_2"
    small.mkdir()
    for name in data["names"]:
        Image.open(bin_root / "images" / name).resize((WIDTH // 2, HEIGHT // 2)).save(small / name)
    full = load_colmap(bin_root, progress=False)
    scene = load_colmap(bin_root, images_dir=small, progress=False)
    torch.testing.assert_close(scene.Ks[:, :2], full.Ks[:, :2] / 2)


def test_near_far_and_aabb_bracket_points(bin_root):
    scene = load_colmap(bin_root, progress=False)
    for i in range(len(scene)):
        _, depth = project(scene.points, scene.camera(i).viewmat, scene.Ks[i])
        assert scene.near < float(depth.min()) and float(depth.max()) < scene.far
    assert 0 < scene.near < scene.far
    inside = ((scene.points >= scene.aabb[:3]) & (scene.points <= scene.aabb[3:])).all(dim=-1)
    assert float(inside.float().mean()) >= 0.95
    assert bool((scene.aabb[3:] - scene.aabb[:3] < 3.0).all())  # points span [-1, 1]


def test_missing_sparse_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="sparse/0"):
        load_colmap(tmp_path, progress=False)


def test_missing_model_file_names_it(bin_root):
    (bin_root / "sparse" / "0" / "points3D.bin").unlink()
    with pytest.raises(FileNotFoundError, match="points3D.bin"):
        load_colmap(bin_root, progress=False)


def test_truncated_binary_names_file(bin_root):
    path = bin_root / "sparse" / "0" / "cameras.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="cameras.bin: truncated"):
        load_colmap(bin_root, progress=False)


def test_malformed_text_line_names_file(text_root):
    path = text_root / "sparse" / "0" / "images.txt"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    lines[first] = lines[first].replace(" 1 view_", " one view_")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"images.txt: line {first + 1}: expected 'IMAGE_ID"):
        load_colmap(text_root, progress=False)


def test_missing_points2d_line_names_file(text_root):
    path = text_root / "sparse" / "0" / "images.txt"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if line) + "\n")
    with pytest.raises(ValueError, match="images.txt: line .*2D points"):
        load_colmap(text_root, progress=False)


def test_missing_image_names_file(bin_root, data):
    (bin_root / "images" / data["names"][1]).unlink()
    with pytest.raises(FileNotFoundError, match=data["names"][1]):
        load_colmap(bin_root, progress=False)


def test_unknown_camera_model_names_file(text_root, bin_root):
    _replace_cameras(text_root, [f"{i + 1} FOV {WIDTH} {HEIGHT} 20 21 16 12 0.1" for i in range(4)])
    with pytest.raises(ValueError, match="cameras.txt: line 2: camera model FOV is not supported"):
        load_colmap(text_root, progress=False)
    path = bin_root / "sparse" / "0" / "cameras.bin"
    fov_camera = struct.pack("<iiQQ5d", 1, 7, WIDTH, HEIGHT, 1, 2, 3, 4, 5)
    path.write_bytes(struct.pack("<Q", 1) + fov_camera)
    with pytest.raises(ValueError, match="cameras.bin: camera model FOV is not supported"):
        load_colmap(bin_root, progress=False)


def test_images_of_different_sizes_name_file(bin_root, data):
    name = sorted(data["names"])[2]
    narrow = np.zeros((HEIGHT, WIDTH - 2, 3), dtype=np.uint8)
    Image.fromarray(narrow).save(bin_root / "images" / name)
    with pytest.raises(ValueError, match=f"{name}: image size {WIDTH - 2}x{HEIGHT} differs"):
        load_colmap(bin_root, progress=False)


def test_bad_arguments(bin_root, data):
    with pytest.raises(ValueError, match="downscale must be an int >= 1"):
        load_colmap(bin_root, downscale=0, progress=False)
    with pytest.raises(ValueError, match=r"viewmats must have shape \[4, 4, 4\]"):
        write_colmap_text(
            bin_root,
            data["Ks"],
            data["viewmats"][:2],
            data["names"],
            WIDTH,
            HEIGHT,
            data["points"],
            data["colours"],
        )


@pytest.mark.parametrize(
    "camera, message",
    [
        (
            f"PINHOLE 0 {HEIGHT} 20 21 16 12",
            rf"width and height must be >= 1 pixel, got 0x{HEIGHT}",
        ),
        (f"PINHOLE {WIDTH} -3 20 21 16 12", "width and height must be >= 1 pixel"),
        (f"PINHOLE {WIDTH} {HEIGHT} 0 21 16 12", "focal lengths must be finite and > 0, got 0.0"),
        (f"SIMPLE_PINHOLE {WIDTH} {HEIGHT} -20 16 12", "focal lengths must be finite and > 0"),
        (f"PINHOLE {WIDTH} {HEIGHT} nan 21 16 12", "focal lengths must be finite and > 0"),
        (f"PINHOLE {WIDTH} {HEIGHT} 20 21 inf 12", "principal point must be finite"),
    ],
)
def test_bad_text_camera_names_file_and_line(text_root, camera, message):
    _replace_cameras(
        text_root,
        [f"{i + 1} PINHOLE {WIDTH} {HEIGHT} 20 21 16 12" for i in range(3)] + [f"4 {camera}"],
    )
    with pytest.raises(ValueError, match=rf"cameras.txt: line 5: camera {message}"):
        load_colmap(text_root, progress=False)


def test_bad_binary_camera_names_file_and_camera(bin_root):
    path = bin_root / "sparse" / "0" / "cameras.bin"
    path.write_bytes(struct.pack("<Q", 1) + struct.pack("<iiQQ4d", 3, 1, 0, HEIGHT, 20, 21, 16, 12))
    with pytest.raises(ValueError, match=r"cameras.bin: camera 3: camera width and height"):
        load_colmap(bin_root, progress=False)


def _set_quaternion(path: Path, image_line: int, quat: str) -> int:
    """Replaces QW QX QY QZ of the image_line-th image of images.txt; returns its line number."""
    lines = path.read_text().splitlines()
    index = [i for i, line in enumerate(lines) if line and not line.startswith("#")][image_line]
    tokens = lines[index].split()
    lines[index] = " ".join([tokens[0], quat, *tokens[5:]])
    path.write_text("\n".join(lines) + "\n")
    return index + 1


@pytest.mark.parametrize("quat", ["0 0 0 0", "nan 0 0 1", "1 inf 0 0", "1e-9 0 0 0"])
def test_degenerate_quaternion_names_file_line_and_image(text_root, data, quat):
    path = text_root / "sparse" / "0" / "images.txt"
    number = _set_quaternion(path, 1, quat)
    with pytest.raises(
        ValueError,
        match=rf"images.txt: line {number}: image {data['names'][1]}: "
        r"quaternion QW QX QY QZ must be finite and non-zero",
    ):
        load_colmap(text_root, progress=False)


def test_degenerate_binary_quaternion_and_translation(bin_root, data):
    path = bin_root / "sparse" / "0" / "images.bin"
    blob = bytearray(path.read_bytes())
    struct.pack_into("<4d", blob, 8 + 4, 0.0, 0.0, 0.0, 0.0)  # first record's quaternion
    path.write_bytes(bytes(blob))
    with pytest.raises(
        ValueError,
        match=rf"images.bin: record 0: image {data['names'][0]}: "
        "quaternion",
    ):
        load_colmap(bin_root, progress=False)
    struct.pack_into("<7d", blob, 8 + 4, 1.0, 0.0, 0.0, 0.0, float("nan"), 0.0, 5.0)
    path.write_bytes(bytes(blob))
    with pytest.raises(
        ValueError, match="images.bin: record 0: .*translation TX TY TZ must be finite"
    ):
        load_colmap(bin_root, progress=False)


def test_non_finite_point_names_file(text_root):
    path = text_root / "sparse" / "0" / "points3D.txt"
    lines = path.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    tokens = lines[index].split()
    lines[index] = " ".join([tokens[0], "nan", *tokens[2:]])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"points3D.txt: line {index + 1}: X Y Z must be finite"):
        load_colmap(text_root, progress=False)


def test_unnormalised_quaternions_are_normalised(text_root, data):
    """COLMAP's quaternions stand for q / |q|: a scaled one gives the same camera."""
    before = load_colmap(text_root, progress=False)
    path = text_root / "sparse" / "0" / "images.txt"
    lines = path.read_text().splitlines()
    index = [i for i, line in enumerate(lines) if line and not line.startswith("#")][0]
    tokens = lines[index].split()
    scaled = [repr(3.0 * float(t)) for t in tokens[1:5]]
    _set_quaternion(path, 0, " ".join(scaled))
    after = load_colmap(text_root, progress=False)
    torch.testing.assert_close(after.c2ws, before.c2ws)
