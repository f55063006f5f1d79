"""DVR (mp3d.implicit.dvr): the secant search finds an analytic sphere's surface, the
implicit-differentiation backward matches the closed form, finite differences and autograd
through an unrolled secant search, rays that miss are handled, a few training steps on
analytic views of a sphere improve the model, checkpoints resume, meshes come back in the
scene's coordinates, and bad input is refused naming the argument or the file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from mp3d.cameras import Orbit, image_rays, intrinsics, invert_rigid, opencv_to_opengl
from mp3d.data.blender import BlenderScene
from mp3d.data.scene import load_scene
from mp3d.implicit.dvr import (
    DVRConfig,
    DVRModel,
    dvr_mesh,
    evaluate_dvr,
    find_surface,
    fit_dvr_scene,
    implicit_surface_points,
    load_dvr,
    secant_refine,
    train_dvr,
)
from mp3d.implicit.igr import IGRField
from mp3d.rendering import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


# Tiny networks so that every training test takes seconds on two cores.
TINY = dict(
    hidden=32,
    layers=3,
    skip=1,
    n_frequencies=2,
    colour_hidden=32,
    colour_layers=1,
    colour_frequencies=2,
    hash_levels=4,
    hash_log2_table_size=12,
    hash_finest_resolution=64,
    hash_hidden=16,
    march_steps=32,
    n_samples=16,
    n_importance=8,
    batch_rays=256,
    log_every=1000,
)


def sphere_views(
    n: int = 8, size: int = 24, radius: float = 0.45, centre=(0.15, -0.1, 0.05)
) -> BlenderScene:
    """Analytic views of a sphere in the box [-1, 1]^3, coloured by its normal, on white,
    with exact alpha masks, from cameras on two rings at distance 3."""
    viewmats = torch.cat(
        [Orbit.around(radius=3.0, elevation_deg=e).viewmats(n // 2) for e in (25.0, -20.0)]
    )
    K = intrinsics(1.3 * size, 1.3 * size, size / 2, size / 2)
    c2ws = invert_rigid(viewmats)
    c = torch.tensor(centre)
    images, alphas, depths = [], [], []
    for c2w in c2ws:
        o, d = image_rays(K, c2w, size, size)
        oc = o - c
        b = (oc * d).sum(-1)
        disc = b * b - (oc * oc).sum(-1) + radius**2
        t = -b - disc.clamp(min=0).sqrt()
        normal = torch.nn.functional.normalize(o + t[..., None] * d - c, dim=-1)
        alpha = (disc > 0).float()[..., None]
        images.append((0.2 + 0.3 * (normal + 1)) * alpha + (1 - alpha))
        alphas.append(alpha[..., 0])
        depths.append(torch.where(disc > 0, t * (d @ c2w[:3, 2]), 0.0))
    views = BlenderScene(
        images=torch.stack(images),
        alphas=torch.stack(alphas),
        Ks=K.expand(len(c2ws), 3, 3).clone(),
        c2ws=c2ws,
        names=[f"r_{i}" for i in range(len(c2ws))],
        background=torch.ones(3),
        near=1.0,
        far=5.0,
        aabb=torch.tensor([-1.0] * 3 + [1.0] * 3),
    )
    views.depths = torch.stack(depths)  # camera z, 0 off the sphere
    return views


class Sphere(torch.nn.Module):
    """Signed distance of a sphere whose radius is a parameter (float64)."""

    def __init__(self, radius: float = 0.5, centre=(0.1, -0.05, 0.02)) -> None:
        super().__init__()
        self.radius = torch.nn.Parameter(torch.tensor(radius, dtype=torch.float64))
        self.register_buffer("centre", torch.tensor(centre, dtype=torch.float64))

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return (points - self.centre.to(points)).norm(dim=-1) - self.radius.to(points)


def sphere_rays(n: int = 300, dtype=torch.float64, seed: int = 0):
    """Rays from (0, 0, -2) towards random points of the plane z = 0, and their range."""
    g = torch.Generator().manual_seed(seed)
    origins = torch.tensor([0.0, 0.0, -2.0], dtype=dtype).expand(n, 3)
    targets = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 1.4
    targets[:, 2] = 0.0
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    near = torch.full((n,), 0.5, dtype=dtype)
    return origins, directions, near, near + 3.0


def closed_form(sphere: Sphere, origins, directions):
    """(hit [R], depth [R], d depth / d radius [R], |cos| of the hit angle [R])."""
    oc = origins - sphere.centre
    b = (oc * directions).sum(-1)
    r = sphere.radius.detach()
    disc = b * b - (oc * oc).sum(-1) + r**2
    root = disc.clamp(min=1e-300).sqrt()
    return disc > 0, -b - root, -r / root, root / r


# ----------------------------------------------------------------------------- the search


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_secant_search_finds_the_sphere_surface(dtype):
    sphere = Sphere()
    origins, directions, near, far = sphere_rays(dtype=dtype)
    hits = find_surface(lambda p: sphere(p).to(dtype), origins, directions, near, far, n_steps=64)
    true_hit, depth, _, cos = closed_form(sphere, origins.double(), directions.double())
    assert not bool((hits.hit & ~true_hit).any())  # no false hits
    assert bool(hits.hit[true_hit & (cos > 0.2)].all())  # and none missed but grazing ones
    assert float((hits.t.double() - depth)[hits.hit].abs().max()) < 1e-5
    assert bool(torch.isfinite(hits.t).all())
    assert torch.equal(hits.t[~hits.hit], far[~hits.hit])


def test_skipping_steps_by_the_lipschitz_bound_finds_the_same_hits_from_fewer_calls():
    sphere = Sphere()
    origins, directions, near, far = sphere_rays()
    counted = []

    def level(points):
        counted.append(len(points))
        return sphere(points)

    full = find_surface(level, origins, directions, near, far, n_steps=64)
    calls_full, counted[:] = sum(counted), []
    fast = find_surface(level, origins, directions, near, far, n_steps=64, lipschitz=1.0)
    assert torch.equal(fast.hit, full.hit)
    torch.testing.assert_close(fast.t, full.t, rtol=0, atol=1e-12)
    assert sum(counted) < 0.6 * calls_full


def test_secant_refine_converges_inside_a_bracket():
    sphere = Sphere()
    origins, directions, _, _ = sphere_rays(50)
    true_hit, depth, _, cos = closed_form(sphere, origins, directions)
    keep = true_hit & (cos > 0.3)
    o, d, t = origins[keep], directions[keep], depth[keep]
    lo, hi = t - 0.03, t + 0.02
    f_lo, f_hi = sphere(o + lo[:, None] * d), sphere(o + hi[:, None] * d)
    with torch.no_grad():
        found = secant_refine(sphere, o, d, lo, hi, f_lo, f_hi, n_steps=8)
    assert float((found - t).abs().max()) < 1e-10


def test_a_level_of_exactly_zero_at_a_step_is_a_hit_not_a_nan():
    origins = torch.tensor([[0.0, 0.0, -2.0]]).expand(3, 3)
    directions = torch.tensor([[0.0, 0.0, 1.0]]).expand(3, 3)

    def plane(points):  # zero at z = -1, reached exactly by the step t = 1
        return -1.0 - points[:, 2]

    near, far = torch.zeros(3), torch.full((3,), 4.0)
    hits = find_surface(plane, origins, directions, near, far, n_steps=5)
    assert hits.hit.all() and torch.equal(hits.t, torch.ones(3))


def test_rays_starting_inside_or_outside_the_range_miss():
    sphere = Sphere(radius=0.4, centre=(0.0, 0.0, 0.0))
    origins = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, -2.0], [0.0, 0.0, -2.0]]).double()
    directions = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]).double()
    near = torch.tensor([0.0, 0.5, 3.0]).double()
    far = torch.tensor([3.0, 3.5, 2.0]).double()  # the last: far < near
    hits = find_surface(sphere, origins, directions, near, far)
    assert hits.hit.tolist() == [False, False, False]


# ----------------------------------------------------------------------------- the backward


def _implicit_depth(level_fn, origins, directions, near, far):
    hits = find_surface(level_fn, origins, directions, near, far, n_steps=64)
    o, d = origins[hits.hit], directions[hits.hit]
    points = implicit_surface_points(level_fn, o + hits.t[hits.hit, None] * d, d)
    return ((points - o) * d).sum(-1), hits.hit


def test_implicit_gradient_matches_the_closed_form_and_finite_differences():
    sphere = Sphere()
    origins, directions, near, far = sphere_rays(100)
    depth, hit = _implicit_depth(sphere, origins, directions, near, far)
    assert int(hit.sum()) > 30
    per_ray = torch.stack(
        [
            torch.autograd.grad(depth[i], sphere.radius, retain_graph=True)[0]
            for i in range(len(depth))
        ]
    )
    _, _, closed, _ = closed_form(sphere, origins[hit], directions[hit])
    torch.testing.assert_close(per_ray, closed, rtol=1e-6, atol=1e-8)
    eps = 1e-5
    with torch.no_grad():
        sphere.radius += eps
        plus = find_surface(sphere, origins, directions, near, far, 64).t[hit]
        sphere.radius -= 2 * eps
        minus = find_surface(sphere, origins, directions, near, far, 64).t[hit]
        sphere.radius += eps
    torch.testing.assert_close(per_ray, (plus - minus) / (2 * eps), rtol=1e-4, atol=1e-6)


def test_implicit_gradient_matches_autograd_through_an_unrolled_secant_search():
    torch.manual_seed(0)
    field = IGRField(hidden=32, layers=3, skip=1, radius=0.4, n_frequencies=2).double()
    origins, directions, near, far = sphere_rays(80, seed=1)
    hits = find_surface(field, origins, directions, near, far, n_steps=64)
    assert int(hits.hit.sum()) > 20
    o, d, t = origins[hits.hit], directions[hits.hit], hits.t[hits.hit]
    weights = torch.randn(len(t), 3, dtype=torch.float64)

    points = implicit_surface_points(field, o + t[:, None] * d, d)
    implicit = torch.autograd.grad((points * weights).sum(), list(field.parameters()))

    lo, hi = t - 0.01, t + 0.01  # a bracket around the root, then 30 steps with a graph
    with torch.no_grad():
        assert bool(
            (field(o + lo[:, None] * d) > 0).all() and (field(o + hi[:, None] * d) < 0).all()
        )
    f_lo, f_hi = field(o + lo[:, None] * d), field(o + hi[:, None] * d)
    unrolled_t = secant_refine(field, o, d, lo, hi, f_lo, f_hi, n_steps=40, illinois=False)
    unrolled = torch.autograd.grad(
        ((o + unrolled_t[:, None] * d) * weights).sum(), list(field.parameters())
    )
    torch.testing.assert_close(unrolled_t, t, rtol=0, atol=1e-9)
    for a, b in zip(implicit, unrolled, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)


def test_rays_that_miss_everything_give_the_background_and_zero_gradients():
    torch.manual_seed(0)
    views = sphere_views(2, 8)
    for renderer in ("surface", "volume"):
        model = DVRModel(DVRConfig(renderer=renderer, **TINY).model_spec(views))
        origins = torch.tensor([[0.0, 0.0, 3.0], [3.0, 3.0, 3.0], [0.0, 0.0, 0.5]])
        directions = torch.nn.functional.normalize(
            torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]), dim=-1
        )
        out = model.render_rays(origins, directions, torch.tensor([0.2, 0.4, 0.6]), train=True)
        # the third ray starts inside the initial sphere: it misses as well
        assert out["opacity"].abs().max() < 1e-6, renderer
        torch.testing.assert_close(out["rgb"], torch.tensor([0.2, 0.4, 0.6]).expand(3, 3))
        loss = out["rgb"].sum() + out["opacity"].sum() + out["depth"].sum()
        assert torch.isfinite(loss)
        loss.backward()
        for name, parameter in model.named_parameters():
            assert parameter.grad is None or float(parameter.grad.abs().max()) == 0.0, name


# ----------------------------------------------------------------------------- training


def _score(model, views):
    metrics = evaluate_dvr(model, views, progress=False)
    return metrics["psnr"], metrics["mask_iou"]


@pytest.mark.parametrize("field", ["mlp", "hash"])
def test_a_few_surface_steps_improve_the_model(field):
    views = sphere_views()
    config = DVRConfig(field=field, steps=40, seed=0, **TINY)
    torch.manual_seed(config.seed)
    before = _score(DVRModel(config.model_spec(views)), views)
    model = train_dvr(views, config, progress=False)
    after = _score(model, views)
    assert after[0] > before[0] + 1.0, (before, after)
    assert after[1] > before[1], (before, after)
    assert model.train_stats["steps"] == 40


@pytest.mark.parametrize("renderer", ["surface", "volume"])
def test_the_depth_loss_trains_where_depth_is_given(renderer):
    views = sphere_views(4, 16)
    config = DVRConfig(renderer=renderer, depth_weight=1.0, steps=3, **TINY)
    model = train_dvr(views, config, progress=False)
    assert math.isfinite(model.train_stats["last_depth"])
    image = model.render(views.camera(0))
    solid = (image.opacity > 0.5) & (views.alphas[0] > 0.5)
    z = image.depth[solid] / image.opacity[solid]
    # the initial sphere (radius 0.6) is near the true one (0.45): z within 0.5 of the truth
    assert float((z - views.depths[0][solid]).abs().max()) < 0.5


def test_occupancy_fields_train_with_the_surface_renderer():
    views = sphere_views(4, 16)
    config = DVRConfig(kind="occupancy", steps=5, **TINY)
    model = train_dvr(views, config, progress=False)
    assert math.isfinite(model.train_stats["last_loss"])
    assert model.field.inside == "above"


def test_checkpoints_resume(tmp_path):
    views = sphere_views(4, 16)
    config = DVRConfig(steps=3, checkpoint_every=2, **TINY)
    first = train_dvr(views, config, out_dir=tmp_path, progress=False)
    loaded, payload = load_dvr(tmp_path / "checkpoint.pt")
    assert payload["step"] == 3
    points = torch.rand(50, 3) - 0.5
    torch.testing.assert_close(loaded.sdf(points), first.sdf(points))
    more = train_dvr(
        views, DVRConfig(steps=5, checkpoint_every=2, **TINY), tmp_path, progress=False
    )
    assert more.train_stats["start_step"] == 3 and more.train_stats["steps"] == 5
    again = train_dvr(views, config, tmp_path, progress=False, fresh=True)
    assert again.train_stats["start_step"] == 0
    with pytest.raises(ValueError, match="renderer"), pytest.warns(RuntimeWarning):
        train_dvr(views, DVRConfig(steps=6, renderer="volume", **TINY), tmp_path, progress=False)


def test_the_initial_mesh_is_the_sphere_in_scene_coordinates(tmp_path):
    views = sphere_views(2, 8)
    aabb = torch.tensor([1.0, 2.0, -1.0, 3.0, 3.0, 0.0])  # longest side 2, centre (2, 2.5, -0.5)
    views.aabb = aabb
    torch.manual_seed(0)
    # the hash field starts as the exact sphere (its residual MLP starts at zero)
    model = DVRModel(DVRConfig(field="hash", init_radius=0.3, **TINY).model_spec(views))
    mesh = dvr_mesh(model, initial=16, upsampling_steps=1)
    radii = np.linalg.norm(mesh.vertices - np.array([2.0, 2.5, -0.5]), axis=1)
    assert len(mesh.faces) > 100
    assert abs(radii.mean() - 0.6) < 0.01 and radii.std() < 0.01


def test_renderings_evaluate_with_the_shared_evaluation(tmp_path):
    views = sphere_views(2, 16)
    model = DVRModel(DVRConfig(**TINY).model_spec(views))
    image = model.render(views.camera(0))
    assert image.rgb.shape == (16, 16, 3) and image.opacity.shape == image.depth.shape == (16, 16)
    assert float(image.opacity.max()) == 1.0
    solid = image.opacity > 0
    assert bool((image.depth[solid] > 1.0).all())  # camera z of a surface 3 away
    metrics = evaluate(model, views, progress=False)
    assert math.isfinite(metrics["psnr"])
    scores = evaluate_dvr(model, views, tmp_path / "eval", progress=False)
    assert 0.0 < scores["mask_iou"] <= 1.0
    assert (tmp_path / "eval" / "r_0_normal.png").is_file()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())[
        "mask_iou"
    ] == pytest.approx(scores["mask_iou"])


# ----------------------------------------------------------------------------- bad input


def _write_blender(folder, views, alpha: bool = True, break_pose: bool = False):
    """A Blender-format folder of `views` (RGBA PNGs, or RGB ones without alpha)."""
    (folder / "train").mkdir(parents=True)
    frames = []
    for i, name in enumerate(views.names):
        rgb = (views.images[i].numpy() * 255).round().astype(np.uint8)
        if alpha:
            a = (views.alphas[i].numpy() * 255).round().astype(np.uint8)
            Image.fromarray(np.dstack([rgb, a]), "RGBA").save(folder / "train" / f"{name}.png")
        else:
            Image.fromarray(rgb, "RGB").save(folder / "train" / f"{name}.png")
        matrix = opencv_to_opengl(views.c2ws[i].double()).tolist()
        if break_pose and i == 1:
            matrix[0][3] = float("nan")
        frames.append({"file_path": f"./train/{name}", "transform_matrix": matrix})
    fov = 2 * math.atan(0.5 * views.width / float(views.Ks[0, 0, 0]))
    meta = {
        "camera_angle_x": fov,
        "frames": frames,
        "near": 1.0,
        "far": 5.0,
        "aabb": [-1, -1, -1, 1, 1, 1],
    }
    (folder / "transforms_train.json").write_text(json.dumps(meta))
    return folder


def test_the_jobs_behind_the_command_line(tmp_path):
    from mp3d.implicit.dvr import mesh_dvr_checkpoint, render_dvr_checkpoint

    folder = _write_blender(tmp_path / "scene", sphere_views(4, 16))
    config = DVRConfig(field="hash", steps=2, **TINY)
    summary = fit_dvr_scene(
        folder, tmp_path / "run", config, holdout=2, mesh_upsampling_steps=1, progress=False
    )
    assert summary["steps"] == 2 and 0 <= summary["mask_iou"] <= 1
    assert summary["mesh"].is_file() and (tmp_path / "run" / "metrics.json").is_file()
    assert (tmp_path / "run" / "test" / "r_0_normal.png").is_file()
    meshed = mesh_dvr_checkpoint(
        tmp_path / "run" / "checkpoint.pt", tmp_path / "m.ply", initial=8, upsampling_steps=1
    )
    assert meshed["faces"] > 0 and meshed["mesh"].is_file()
    rendered = render_dvr_checkpoint(
        tmp_path / "run" / "checkpoint.pt", tmp_path / "render", n_frames=2, progress=False
    )
    assert rendered["turntable"].is_file() and rendered["normals"].is_file()
    assert math.isfinite(rendered["psnr"])  # the held-out views, from the data folder


def test_views_without_masks_are_refused_naming_the_folder(tmp_path):
    folder = _write_blender(tmp_path / "nomask", sphere_views(4, 8), alpha=False)
    train_views, _, _ = load_scene(folder, holdout=2, progress=False)
    with pytest.raises(ValueError, match=r"nomask.*no masks"):
        train_dvr(train_views, DVRConfig(steps=1, **TINY), progress=False, source=folder)
    with pytest.raises(ValueError, match=r"nomask.*no masks"):
        fit_dvr_scene(
            folder, tmp_path / "out", DVRConfig(steps=1, **TINY), holdout=2, progress=False
        )
    # the volume renderer without the mask loss needs none
    config = DVRConfig(steps=1, renderer="volume", mask_weight=0.0, **TINY)
    assert train_dvr(train_views, config, progress=False).train_stats["steps"] == 1


def test_non_finite_poses_are_refused_naming_the_view_or_file(tmp_path):
    views = sphere_views(4, 8)
    views.c2ws[2, 0, 3] = float("inf")
    with pytest.raises(ValueError, match=r"c2ws\[2\].*r_2"):
        train_dvr(views, DVRConfig(steps=1, **TINY), progress=False)
    folder = _write_blender(tmp_path / "badpose", sphere_views(4, 8), break_pose=True)
    with pytest.raises(ValueError, match=r"transforms_train.json: frame 1.*finite"):
        fit_dvr_scene(
            folder, tmp_path / "out", DVRConfig(steps=1, **TINY), holdout=2, progress=False
        )


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"renderer": "nerf"}, "renderer"),
        ({"field": "grid"}, "field"),
        ({"renderer": "volume", "kind": "occupancy"}, "kind"),
        ({"batch_rays": 0}, "batch_rays"),
        ({"march_steps": 1}, "march_steps"),
        ({"mask_point": "middle"}, "mask_point"),
        ({"lr": float("nan")}, "lr"),
        ({"skip": 5}, "skip"),
    ],
)
def test_bad_configs_are_refused_naming_the_field(changes, name):
    with pytest.raises(ValueError, match=name):
        DVRConfig(**{**TINY, **changes})


def test_bad_arguments_are_refused():
    views = sphere_views(2, 8)
    with pytest.raises(ValueError, match="DVRConfig"):
        train_dvr(views, {"steps": 1})
    del views.depths
    with pytest.raises(ValueError, match="depth_weight"):
        train_dvr(views, DVRConfig(depth_weight=1.0, steps=1, **TINY), progress=False)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_dvr("/nonexistent/checkpoint.pt")
