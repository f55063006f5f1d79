"""Multi-view data from a mesh: masks, depth and shading against closed forms, the folder
read back by mp3d's own loader, and refusals of bad input and half-written folders."""

from __future__ import annotations

import filecmp
import json
import math

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from mp3d.cameras import focal_from_fov, image_rays, intrinsics_from_fov, project
from mp3d.data import mesh_views
from mp3d.data.scene import load_scene

if not any(mesh_views._available(backend) for backend in mesh_views.BACKENDS):
    pytest.skip("needs a ray caster: pip install embreex", allow_module_level=True)

CENTRE = np.array([0.3, -0.2, 0.5])  # off the origin: the mesh's coordinates are kept
RADIUS = 0.8
RESOLUTION = 64
FOV_DEGREES = 40.0


def _sphere(subdivisions: int = 6) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions, radius=RADIUS)
    sphere.apply_translation(CENTRE)
    return sphere


def _ray_sphere(origins, directions, radius):
    """(hit [R], distance [R]) of unit rays against the sphere of `radius` about CENTRE."""
    offset = origins - CENTRE
    b = np.einsum("ij,ij->i", offset, directions)
    disc = b * b - (np.einsum("ij,ij->i", offset, offset) - radius * radius)
    return disc > 0, -b - np.sqrt(np.clip(disc, 0, None))


@pytest.fixture(scope="module")
def sphere_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sphere") / "views"
    return mesh_views.render_mesh_views(
        _sphere(),
        out,
        n_train=3,
        n_test=2,
        resolution=RESOLUTION,
        fov_degrees=FOV_DEGREES,
        progress=False,
    )


@pytest.fixture(scope="module")
def sphere_scene(sphere_dir):
    train, test, kind = load_scene(sphere_dir, background="black", progress=False)
    assert kind == "blender"
    return train, test


def _views(scene):
    train, test = scene
    return [
        (split, views, i)
        for split, views in (("train", train), ("test", test))
        for i in range(len(views))
    ]


def test_mask_is_the_projected_disc(sphere_dir, sphere_scene):
    for _, views, i in _views(sphere_scene):
        camera = views.camera(i)
        distance = float(np.linalg.norm(camera.c2w[:3, 3].double().numpy() - CENTRE))
        # The camera looks at the centre: the sphere projects to a disc about the image centre.
        radius_px = focal_from_fov(math.radians(FOV_DEGREES), RESOLUTION) * math.tan(
            math.asin(RADIUS / distance)
        )
        rows, cols = np.mgrid[0:RESOLUTION, 0:RESOLUTION] + 0.5
        from_centre = np.hypot(cols - RESOLUTION / 2, rows - RESOLUTION / 2)
        mask = views.alphas[i].numpy()
        assert set(np.unique(mask)) <= {0.0, 1.0}  # exact: no partial coverage
        disc = from_centre < radius_px
        assert disc.sum() > 0.3 * RESOLUTION**2  # the sphere fills the view
        wrong = mask.astype(bool) != disc
        assert np.all(np.abs(from_centre[wrong] - radius_px) < math.sqrt(0.5))
        assert wrong.sum() <= 0.01 * disc.sum()


def test_depth_is_the_ray_sphere_intersection(sphere_dir, sphere_scene):
    sphere = _sphere()
    # The icosphere lies between its inscribed sphere (through its faces' centres) and the
    # true one (through its vertices).
    inner = float(np.linalg.norm(sphere.triangles_center - CENTRE, axis=1).min())
    for split, views, i in _views(sphere_scene):
        camera = views.camera(i)
        origins, directions = image_rays(camera.K.double(), camera.c2w.double(), 64, 64)
        origins, directions = origins.reshape(-1, 3).numpy(), directions.reshape(-1, 3).numpy()
        forward = camera.c2w[:3, 2].double().numpy()
        depth = np.load(sphere_dir / split / f"r_{i}_depth.npy")
        assert depth.dtype == np.float32 and depth.shape == (RESOLUTION, RESOLUTION)
        depth = depth.reshape(-1).astype(np.float64)
        alpha = views.alphas[i].numpy().reshape(-1) > 0
        assert np.all(depth[~alpha] == 0) and np.all(depth[alpha] > 0)
        hit, t = _ray_sphere(origins, directions, RADIUS)
        z = t * (directions @ forward)  # z-depth: along the optical axis
        both = hit & alpha
        # Where the ray meets the surface at more than ~17 degrees: the closed form to 1e-4.
        normal = origins + t[:, None] * directions - CENTRE
        facing = -np.einsum("ij,ij->i", normal / RADIUS, directions) > 0.3
        relative = np.abs(depth - z) / z
        assert relative[both & facing].max() < 1e-4
        # Everywhere: between the intersections with the true and the inscribed sphere.
        hit_inner, t_inner = _ray_sphere(origins, directions, inner)
        z_inner = t_inner * (directions @ forward)
        band = both & hit_inner
        assert np.all(depth[band] >= z[band] * (1 - 1e-6))
        assert np.all(depth[band] <= z_inner[band] * (1 + 1e-6))


def test_depth_of_a_box_is_exact(tmp_path):
    box = trimesh.creation.box(extents=(1.0, 0.6, 0.4))
    box.apply_translation((2.0, 1.0, -1.0))
    renderer = mesh_views.MeshRenderer(box)
    K = intrinsics_from_fov(0.6, 32, 32, dtype=torch.float64)
    c2ws = mesh_views.view_poses((2.0, 1.0, -1.0), 2.5, mesh_views.sphere_directions(4))
    low, high = box.bounds
    for c2w in c2ws:
        _, depth = renderer.render(K, c2w, 32, 32)
        origins, directions = image_rays(K, c2w, 32, 32)
        o, d = origins.reshape(-1, 3).numpy(), directions.reshape(-1, 3).numpy()
        with np.errstate(divide="ignore"):
            t0, t1 = (low - o) / d, (high - o) / d
        entry = np.minimum(t0, t1).max(axis=1)
        hit = entry < np.maximum(t0, t1).min(axis=1)
        z = entry * (d @ c2w[:3, 2].numpy())
        depth = depth.reshape(-1)
        inside = hit & (depth > 0)
        assert inside.sum() > 0.9 * hit.sum()
        # float32 storage is the only rounding left: the casters' hits are refined in float64.
        assert np.abs(depth[inside] - z[inside]).max() < 1e-6 * z[inside].max()


def test_folder_loads_and_its_cameras_reproduce_the_images(sphere_dir, sphere_scene):
    train, test = sphere_scene
    assert (len(train), len(test)) == (3, 2)
    meta = json.loads((sphere_dir / "transforms_train.json").read_text())
    assert meta["depth_type"] == "z"
    assert meta["camera_angle_x"] == pytest.approx(math.radians(FOV_DEGREES))
    assert all((sphere_dir / frame["depth_file_path"]).is_file() for frame in meta["frames"])
    aabb = np.array(meta["aabb"])
    assert np.all(aabb[:3] < CENTRE - RADIUS) and np.all(aabb[3:] > CENTRE + RADIUS)
    # Cameras at one distance, looking at the mesh's centre; no test view repeats a training one.
    positions = torch.cat([train.c2ws, test.c2ws])[:, :3, 3].double().numpy()
    distances = np.linalg.norm(positions - CENTRE, axis=1)
    assert np.allclose(distances, distances[0], rtol=1e-6)
    assert meta["near"] < distances[0] - RADIUS and meta["far"] > distances[0] + RADIUS
    gaps = np.linalg.norm(positions[:3, None] - positions[None, 3:], axis=-1)
    assert gaps.min() > 0.1 * distances[0]
    vertices = torch.from_numpy(_sphere().vertices)
    for split, views, i in _views(sphere_scene):
        camera = views.camera(i)
        forward = camera.c2w[:3, 2].double().numpy()
        towards = CENTRE - camera.c2w[:3, 3].double().numpy()
        assert np.allclose(forward, towards / np.linalg.norm(towards), atol=1e-6)
        # Every vertex projects into the mask (within the pixel's neighbours at the rim).
        pixels, z = project(vertices, camera.viewmat.double(), camera.K.double())
        assert bool((z > 0).all())
        cols, rows = pixels.floor().long().unbind(-1)
        mask = torch.nn.functional.max_pool2d(views.alphas[i][None, None], 3, 1, 1)[0, 0]
        assert bool((mask[rows, cols] > 0).all())
        # Depth unprojected through the loaded camera lands on the sphere.
        depth = torch.from_numpy(np.load(sphere_dir / split / f"r_{i}_depth.npy")).double()
        origins, directions = image_rays(camera.K.double(), camera.c2w.double(), 64, 64)
        along = (directions * camera.c2w[:3, 2].double()).sum(-1)
        points = origins + directions * (depth / along)[..., None]
        on = views.alphas[i] > 0
        radii = (points[on] - torch.from_numpy(CENTRE)).norm(dim=-1)
        assert float((radii - RADIUS).abs().max()) < 1e-3 * RADIUS


def _plane(colour=None, size=4.0) -> trimesh.Trimesh:
    """A square in the z = 0 plane facing +z, of one vertex colour if given."""
    h = size / 2
    plane = trimesh.Trimesh(
        [[-h, -h, 0], [h, -h, 0], [h, h, 0], [-h, h, 0]], [[0, 1, 2], [0, 2, 3]], process=False
    )
    if colour is not None:
        rgba = np.r_[np.round(np.asarray(colour) * 255), 255].astype(np.uint8)
        plane.visual.vertex_colors = np.tile(rgba, (4, 1))
    return plane


def _top_camera(distance=2.0, below=False):
    eye = torch.tensor([0.0, 0.0, -distance if below else distance], dtype=torch.float64)
    return mesh_views.view_poses((0.0, 0.0, 0.0), distance, (eye / distance)[None], "+y")[0]


def test_shading_of_a_plane_is_lambertian():
    colour = np.array([200, 150, 100]) / 255.0
    key = (np.array([1.0, 0.0, 2.0]), 0.7)  # n.l = 2 / sqrt(5)
    under = (np.array([0.0, 1.0, -1.0]), 0.5)  # below the plane: clipped to 0
    renderer = mesh_views.MeshRenderer(_plane(colour), lights=[key, under], ambient=0.2)
    K = intrinsics_from_fov(0.5, 16, 16, dtype=torch.float64)
    above = colour * (0.2 + 0.7 * 2 / math.sqrt(5))
    # Seen from behind, the face is two-sided: its normal turns to the viewer (-z), lit by
    # the light below it (n.l = 1 / sqrt(2)) and not by the key light.
    below = colour * (0.2 + 0.5 / math.sqrt(2))
    for from_below, expected in ((False, above), (True, below)):
        rgba, _ = renderer.render(K, _top_camera(below=from_below), 16, 16)
        assert np.all(rgba[..., 3] == 1)
        assert np.allclose(rgba[..., :3], expected, atol=1e-6)


def test_shading_of_a_sphere_follows_the_cosine_law():
    sphere = _sphere(5)
    sphere.visual.vertex_colors = np.full((len(sphere.vertices), 4), 255, dtype=np.uint8)
    light = np.array([0.3, -0.5, 0.8])
    light /= np.linalg.norm(light)
    renderer = mesh_views.MeshRenderer(sphere, lights=[(light, 0.8)], ambient=0.1)
    K = intrinsics_from_fov(0.7, 48, 48, dtype=torch.float64)
    for c2w in mesh_views.view_poses(CENTRE, 3.0, mesh_views.sphere_directions(3)):
        rgba, _ = renderer.render(K, c2w, 48, 48)
        origins, directions = image_rays(K, c2w, 48, 48)
        o, d = origins.reshape(-1, 3).numpy(), directions.reshape(-1, 3).numpy()
        hit, t = _ray_sphere(o, d, RADIUS)
        normals = (o + t[:, None] * d - CENTRE) / RADIUS
        expected = 0.1 + 0.8 * np.clip(normals @ light, 0, None)
        alpha = rgba[..., 3].reshape(-1) > 0
        both = hit & alpha
        grey = rgba[..., :3].reshape(-1, 3)[both]
        assert np.allclose(grey, grey[:, :1], atol=1e-6)  # white albedo stays grey
        assert np.abs(grey[:, 0] - expected[both]).max() < 0.02
        lit, dark = expected[both] > 0.5, expected[both] < 0.1 + 1e-9
        assert lit.any() and dark.any()  # both sides of the terminator are in view


def test_shading_normals_are_smooth_but_keep_creases(monkeypatch):
    sphere = _sphere(3)
    normals = mesh_views.MeshRenderer(sphere).corner_normals
    expected = (sphere.vertices[sphere.faces] - CENTRE) / RADIUS
    assert np.abs(normals - expected).max() < 0.02  # smooth: the sphere's own normals
    box = trimesh.creation.box()  # every edge a 90 degree crease: the faces' own normals
    box_normals = mesh_views.MeshRenderer(box).corner_normals
    assert np.allclose(box_normals, box.face_normals[:, None, :], atol=1e-9)
    monkeypatch.setattr(mesh_views, "CORNER_PAIR_LIMIT", 0)  # the path for huge vertex fans
    assert np.allclose(mesh_views.MeshRenderer(sphere).corner_normals, normals, atol=1e-9)


def test_procedural_colour_is_deterministic_smooth_and_varied():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.5, 0.5, (2000, 3))
    colour = mesh_views.procedural_colour(points, seed=0)
    assert colour.shape == (2000, 3)
    assert np.array_equal(colour, mesh_views.procedural_colour(points, seed=0))
    assert not np.allclose(colour, mesh_views.procedural_colour(points, seed=1))
    assert colour.min() >= 0.2 and colour.max() <= 1.0
    assert np.all(colour.std(axis=0) > 0.05)  # every channel varies over the cube
    # Smooth: nearby points have nearby colours (|gradient| <= 2 pi * 4 cycles * 0.38).
    step = 1e-3 * rng.normal(size=points.shape)
    change = np.abs(mesh_views.procedural_colour(points + step, seed=0) - colour).max(axis=1)
    assert np.all(change <= 2 * math.pi * 4 * 0.38 * np.linalg.norm(step, axis=1) + 1e-12)


def test_rendering_is_deterministic(tmp_path):
    kwargs = dict(n_train=2, n_test=1, resolution=24, progress=False)
    mesh = trimesh.creation.icosphere(3)
    first = mesh_views.render_mesh_views(mesh, tmp_path / "a", **kwargs)
    second = mesh_views.render_mesh_views(mesh, tmp_path / "b", **kwargs)
    for split in ("train", "test"):
        names = sorted(p.name for p in (first / split).iterdir())
        match, mismatch, errors = filecmp.cmpfiles(first / split, second / split, names, False)
        assert len(match) == len(names) and not mismatch and not errors
    image = np.asarray(Image.open(first / "train" / "r_0.png"))
    assert image.shape == (24, 24, 4)
    colours = image[image[..., 3] == 255, :3]
    assert colours.std(axis=0).min() > 5  # textured, not one flat colour


def test_vertex_colours_and_textures_are_used():
    K = intrinsics_from_fov(0.5, 16, 16, dtype=torch.float64)
    lights, ambient = [((0.0, 0.0, 1.0), 0.5)], 0.5  # facing the light: intensity 1
    colour = np.array([230, 25, 51]) / 255.0
    red = mesh_views.MeshRenderer(_plane(colour), lights=lights, ambient=ambient)
    rgba, _ = red.render(K, _top_camera(), 16, 16)
    assert np.allclose(rgba[..., :3], colour, atol=1e-6)

    pixels = np.zeros((8, 8, 3), dtype=np.uint8)
    pixels[:, :4] = (255, 0, 0)  # u < 0.5: red
    pixels[:, 4:] = (0, 0, 255)  # u > 0.5: blue
    plane = _plane(size=1.2)  # fills the view: u from about 0.08 to 0.92
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    plane.visual = trimesh.visual.TextureVisuals(uv=uv, image=Image.fromarray(pixels))
    textured = mesh_views.MeshRenderer(plane, lights=lights, ambient=ambient)
    assert textured.albedo.kind == "texture"
    rgba, _ = textured.render(K, _top_camera(), 16, 16)
    # The camera looks down -z with +y up, so +x (growing u) is to the right.
    assert np.allclose(rgba[:, :5, :3], [1, 0, 0], atol=1e-6)
    assert np.allclose(rgba[:, -5:, :3], [0, 0, 1], atol=1e-6)


def test_uniform_texture_falls_back_to_procedural_colour():
    plane = _plane()
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    grey = Image.new("RGB", (2, 2), (128, 128, 128))  # what trimesh makes for a lost texture
    plane.visual = trimesh.visual.TextureVisuals(uv=uv, image=grey)
    assert mesh_views.MeshRenderer(plane).albedo.kind == "procedural"


def test_ray_casters_agree():
    other = "open3d"
    if not mesh_views._available(other) or not mesh_views._available("embree"):
        pytest.skip("needs both embreex and open3d")
    sphere = _sphere(4)
    rng = np.random.default_rng(0)
    origins = CENTRE + rng.normal(size=(5000, 3)) * 3
    directions = CENTRE + rng.uniform(-1, 1, (5000, 3)) - origins
    embree = mesh_views.cast_rays(sphere, origins, directions, backend="embree")
    open3d = mesh_views.cast_rays(sphere, origins, directions, backend=other)
    assert np.array_equal(embree[0], open3d[0])
    hit = embree[0]
    assert 0.2 < hit.mean() < 0.95
    assert np.allclose(embree[1][hit], open3d[1][hit], rtol=1e-6)


def test_cast_rays_contract():
    sphere = _sphere(3)
    origins = np.array([CENTRE + [0, 0, 3.0], CENTRE + [0, 0, 3.0], CENTRE])
    directions = np.array([[0, 0, -2.0], [0, 1.0, 0], [1.0, 0, 0]])  # any length
    hit, distance, face, normal = mesh_views.cast_rays(sphere, origins, directions)
    assert hit.tolist() == [True, False, True]  # from inside, the inner side is hit
    assert distance[0] == pytest.approx(3.0 - RADIUS, rel=1e-3) and distance[1] == np.inf
    assert face[1] == -1 and face[0] >= 0 and np.all(normal[1] == 0)
    assert normal[0] @ [0, 0, 1] > 0.99 and normal[2] @ [1, 0, 0] > 0.99
    empty = mesh_views.cast_rays(sphere, np.zeros((0, 3)), np.zeros((0, 3)))
    assert [a.shape for a in empty] == [(0,), (0,), (0,), (0, 3)]
    with pytest.raises(ValueError, match="origins and directions"):
        mesh_views.cast_rays(sphere, np.zeros((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="directions must be nonzero"):
        mesh_views.cast_rays(sphere, np.zeros((1, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="origins must have shape"):
        mesh_views.cast_rays(sphere, np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="backend"):
        mesh_views.cast_rays(sphere, origins, directions, backend="optix")


def test_missing_ray_caster_says_what_to_install(monkeypatch):
    monkeypatch.setattr(mesh_views, "_available", lambda backend: False)
    with pytest.raises(ImportError, match="pip install embreex"):
        mesh_views.RayCaster(_sphere(1))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(resolution=0), "resolution"),
        (dict(resolution=2.5), "resolution"),
        (dict(n_train=0), "n_train"),
        (dict(n_test=-1), "n_test"),
        (dict(fov_degrees=0.0), "fov_degrees"),
        (dict(fov_degrees=180.0), "fov_degrees"),
        (dict(fov_degrees=float("nan")), "fov_degrees"),
        (dict(up="sideways"), "up"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mesh_views.render_mesh_views(_sphere(1), tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_bad_meshes_are_named(tmp_path):
    broken = _sphere(1)
    broken.vertices[3] = [np.nan, 0.0, 0.0]
    with pytest.raises(ValueError, match="vertex positions must be finite"):
        mesh_views.render_mesh_views(broken, tmp_path / "a", progress=False)
    garbage = tmp_path / "garbage.ply"
    garbage.write_bytes(b"ply\nformat nonsense\n\x00\x01\x02 not a mesh")
    with pytest.raises(ValueError, match="garbage.ply"):
        mesh_views.render_mesh_views(garbage, tmp_path / "b", progress=False)
    with pytest.raises(FileNotFoundError, match="missing.obj"):
        mesh_views.render_mesh_views(tmp_path / "missing.obj", tmp_path / "c", progress=False)
    with pytest.raises(TypeError, match="mesh_or_path"):
        mesh_views.render_mesh_views(42, tmp_path / "d", progress=False)
    flat = trimesh.Trimesh([[0, 0, 0]] * 3, [[0, 1, 2]], process=False)
    with pytest.raises(ValueError, match="no extent"):
        mesh_views.render_mesh_views(flat, tmp_path / "e", progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["garbage.ply"]


def test_non_empty_folder_is_kept_unless_overwrite(tmp_path):
    out = tmp_path / "views"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    kwargs = dict(n_train=2, n_test=1, resolution=8, progress=False)
    with pytest.raises(FileExistsError, match="overwrite=True") as error:
        mesh_views.render_mesh_views(_sphere(1), out, **kwargs)
    assert str(out) in str(error.value)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    mesh_views.render_mesh_views(_sphere(1), out, overwrite=True, **kwargs)
    assert sorted(p.name for p in out.iterdir()) == [
        "test",
        "train",
        "transforms_test.json",
        "transforms_train.json",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["views"]  # no staging folder left
    # An empty folder is filled without asking; no test split without test views.
    empty = tmp_path / "empty"
    empty.mkdir()
    mesh_views.render_mesh_views(
        _sphere(1), empty, n_train=2, n_test=0, resolution=8, progress=False
    )
    assert not (empty / "transforms_test.json").exists()
    train, held, _ = load_scene(empty, holdout=2, progress=False)
    assert (len(train), len(held)) == (1, 1)


def test_interrupted_write_leaves_no_half_folder(tmp_path, monkeypatch):
    written = []
    real = mesh_views._write_png

    def failing(rgba, path):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(path)
        real(rgba, path)

    monkeypatch.setattr(mesh_views, "_write_png", failing)
    kwargs = dict(n_train=4, n_test=2, resolution=8, progress=False)
    with pytest.raises(OSError, match="disk full"):
        mesh_views.render_mesh_views(_sphere(1), tmp_path / "new", **kwargs)
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its staging copy

    old = tmp_path / "old"
    monkeypatch.setattr(mesh_views, "_write_png", real)
    mesh_views.render_mesh_views(_sphere(1), old, n_train=2, n_test=1, resolution=8, progress=False)
    before = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    written.clear()
    monkeypatch.setattr(mesh_views, "_write_png", failing)
    with pytest.raises(OSError, match="disk full"):
        mesh_views.render_mesh_views(_sphere(2), old, overwrite=True, **kwargs)
    after = {p.relative_to(old): p.read_bytes() for p in old.rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["old"]


def test_the_loader_reads_the_depth_maps(sphere_dir, sphere_scene):
    for split, views, i in _views(sphere_scene):
        frame = json.loads((sphere_dir / f"transforms_{split}.json").read_text())["frames"][i]
        written = np.load(sphere_dir / frame["depth_file_path"])
        assert torch.equal(views.depths[i], torch.from_numpy(written))
        # Known exactly where the mask is, unknown (0) elsewhere.
        assert torch.equal(views.depths[i] > 0, views.alphas[i] > 0.5)
