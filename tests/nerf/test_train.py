"""NeRF training end to end on a tiny generated scene: quality, checkpoints, resume, errors."""

from __future__ import annotations

import pytest
import torch

from mp3d.data.blender import load_blender
from mp3d.nerf import TrainConfig, evaluate, extract_mesh, load_checkpoint, train
from mp3d.nerf.fields import HashNeRF, VanillaNeRF
from mp3d.nerf.model import ModelSpec, NeRFModel

TINY_HASH = dict(
    model="hash",
    batch_rays=1024,
    n_levels=8,
    log2_table_size=13,
    finest_resolution=96,
    grid_resolution=24,
    log_every=10,
)


@pytest.fixture(scope="module")
def tiny_views(tmp_path_factory):
    """The demo scene at 32x32 with enough views (24) to constrain a NeRF."""
    from mp3d.data.demo import write_demo_scene

    scene = write_demo_scene(
        tmp_path_factory.mktemp("scene") / "demo",
        n_train=24,
        n_val=1,
        n_test=3,
        resolution=32,
        progress=False,
    )
    return (
        load_blender(scene, "train", progress=False),
        load_blender(scene, "test", progress=False),
    )


@pytest.fixture(scope="module")
def trained(tiny_views, tmp_path_factory):
    out = tmp_path_factory.mktemp("nerf")
    config = TrainConfig(steps=200, checkpoint_every=50, **TINY_HASH)
    model = train(tiny_views[0], config, out_dir=out, progress=False)
    return model, out, config


def test_hash_nerf_learns_tiny_scene(trained, tiny_views):
    model, _, _ = trained
    metrics = evaluate(model, tiny_views[1], progress=False)
    assert metrics["psnr"] > 18.0, metrics  # a flat colour scores about 11 dB here
    image = model.render(tiny_views[1].camera(0))
    assert image.rgb.shape == (32, 32, 3) and image.depth.shape == (32, 32)
    assert float(image.rgb.min()) >= 0 and float(image.rgb.max()) <= 1
    assert float(image.opacity.max()) <= 1 + 1e-5


def test_checkpoint_round_trip_and_resume(trained, tiny_views):
    model, out, config = trained
    restored, payload = load_checkpoint(out / "checkpoint.pt")
    assert payload["step"] == 200 and restored.spec == model.spec
    camera = tiny_views[1].camera(1)
    torch.testing.assert_close(restored.eval().render(camera).rgb, model.render(camera).rgb)
    # Resuming with more steps continues from step 200 rather than starting over.
    longer = TrainConfig(**{**config.__dict__, "steps": 210})
    train(tiny_views[0], longer, out_dir=out, progress=False)
    assert load_checkpoint(out / "checkpoint.pt")[1]["step"] == 210


def test_interrupted_save_keeps_checkpoint(trained, monkeypatch):
    from mp3d.nerf import checkpoint as ckpt

    model, out, config = trained
    before = (out / "checkpoint.pt").read_bytes()

    def broken_save(obj, f):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(out / "checkpoint.pt", model, None, 1, 0.0, None, config)
    assert (out / "checkpoint.pt").read_bytes() == before


def test_checkpoint_errors_name_the_file(tmp_path, trained, tiny_views):
    missing = tmp_path / "none.pt"
    with pytest.raises(FileNotFoundError, match="none.pt"):
        load_checkpoint(missing)
    other = tmp_path / "splat.pt"
    torch.save({"format": "mp3d.splat", "version": 1}, other)
    with pytest.raises(ValueError, match="splat.pt: not an mp3d NeRF checkpoint"):
        load_checkpoint(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pt: not a readable checkpoint"):
        load_checkpoint(garbage)
    # A checkpoint of one model kind cannot resume training of another.
    _, out, config = trained
    with pytest.raises(ValueError, match="checkpoint.pt: holds a 'hash' model"):
        train(tiny_views[0], TrainConfig(model="vanilla", steps=1), out_dir=out, progress=False)


def test_vanilla_nerf_loss_falls(tiny_views):
    torch.manual_seed(0)
    config = TrainConfig(
        model="vanilla", steps=1, batch_rays=256, n_coarse=16, n_fine=16, background="white"
    )
    losses = []
    model = None
    for steps in (1, 25):
        model = train(
            tiny_views[0], TrainConfig(**{**config.__dict__, "steps": steps}), progress=False
        )
        image = model.render(tiny_views[0].camera(0), background=(1, 1, 1))
        losses.append(float(((image.rgb - tiny_views[0].images[0]) ** 2).mean()))
    assert losses[1] < losses[0]
    out = model.render_rays(
        torch.zeros(4, 3) + torch.tensor([0.0, 0.0, 4.0]),
        torch.tensor([[0.0, 0.0, -1.0]]).expand(4, 3),
        torch.ones(3),
    )
    assert out["rgb"].shape == (4, 3) and out["coarse_rgb"].shape == (4, 3)


def test_fields_shapes_and_ranges():
    points, directions = (
        torch.rand(10, 3) - 0.5,
        torch.nn.functional.normalize(torch.randn(10, 3), dim=-1),
    )
    for field in (
        VanillaNeRF(width=32, depth=4, skip=2),
        HashNeRF(
            torch.tensor([-1.0, -1, -1, 1, 1, 1]),
            n_levels=4,
            log2_table_size=10,
            finest_resolution=32,
        ),
    ):
        sigma, rgb = field(points, directions)
        assert sigma.shape == (10,) and rgb.shape == (10, 3)
        assert bool((sigma >= 0).all()) and bool(((rgb >= 0) & (rgb <= 1)).all())
        per_ray_sigma, per_ray_rgb = field(points, directions[:2], torch.tensor([0] * 5 + [1] * 5))
        torch.testing.assert_close(
            per_ray_rgb[:5], field(points[:5], directions[:1].expand(5, 3))[1]
        )


def test_mesh_of_trained_model(trained):
    model, _, _ = trained
    mesh = extract_mesh(model, resolution=48, threshold=10.0, colour=True, progress=False)
    assert len(mesh.vertices) > 100 and len(mesh.faces) > 100
    assert mesh.visual.vertex_colors.shape == (len(mesh.vertices), 4)
    low, high = model.spec.aabb[:3], model.spec.aabb[3:]
    assert bool(((mesh.vertices >= low) & (mesh.vertices <= high)).all())


def test_rendering_without_autograd_equals_the_differentiable_path(trained, tiny_views):
    """The no-grad path colours the culling pass's features instead of a second pass."""
    model, _, _ = trained
    origins, directions = tiny_views[1].camera(0).rays()
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    with torch.no_grad():
        fast = model.render_rays(origins, directions, 1.0)
    with torch.enable_grad():
        slow = model.render_rays(origins, directions, 1.0)
    assert int(fast["n_samples"]) == int(slow["n_samples"]) > 0
    for key in ("rgb", "opacity", "depth"):
        torch.testing.assert_close(fast[key], slow[key].detach(), rtol=1e-5, atol=1e-5)


def test_the_weight_threshold_skips_samples_that_barely_change_a_pixel(trained, tiny_views):
    model, _, _ = trained
    origins, directions = tiny_views[1].camera(0).rays()
    origins, directions = origins.reshape(-1, 3), directions.reshape(-1, 3)
    rendered = {}
    for threshold in (0.0, 1e-4, 1e-2):
        model.spec.weight_threshold = threshold
        with torch.no_grad():
            rendered[threshold] = model.render_rays(origins, directions, 1.0)
    model.spec.weight_threshold = ModelSpec().weight_threshold
    counts = [int(rendered[t]["n_samples"]) for t in (0.0, 1e-4, 1e-2)]
    assert counts[0] > counts[1] > counts[2], counts
    error = (rendered[1e-4]["rgb"] - rendered[0.0]["rgb"]).abs().max()
    assert error < 5e-3, error


def test_the_automatic_march_step_follows_pixels_up_to_a_cap():
    from types import SimpleNamespace

    from mp3d.nerf.trainer import MAX_AUTO_MARCH_STEPS

    def views(size):
        box = torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0])
        return SimpleNamespace(width=size, height=size // 2, aabb=box, near=2.0, far=6.0)

    config = TrainConfig()
    assert config.model_spec(views(100)).march_steps == 150
    assert config.model_spec(views(20)).march_steps == 64
    assert config.model_spec(views(800)).march_steps == MAX_AUTO_MARCH_STEPS
    assert TrainConfig(march_steps=1200).model_spec(views(800)).march_steps == 1200


def test_bad_config():
    with pytest.raises(ValueError, match="background must be one of"):
        TrainConfig(background="green")
    with pytest.raises(ValueError, match="model kind must be one of"):
        NeRFModel(ModelSpec(kind="gaussian"))
    with pytest.raises(ValueError, match="minutes must be a finite number > 0"):
        TrainConfig(minutes=0)
    with pytest.raises(ValueError, match="weight_threshold must be"):
        TrainConfig(weight_threshold=-1e-3)


def test_resuming_refuses_other_data_and_fresh_starts_over(tiny_views, tmp_path):
    import os
    import time

    config = TrainConfig(steps=3, checkpoint_every=100, **TINY_HASH)
    train(tiny_views[0], config, out_dir=tmp_path, progress=False, meta={"data": "a"})
    with pytest.raises(
        ValueError, match="was trained on other data .data: 'a' there, 'b' now.*--fresh"
    ):
        train(tiny_views[0], config, out_dir=tmp_path, progress=False, meta={"data": "b"})
    stale = tmp_path / ".checkpoint.pt.abc123.pt"  # what a kill during a save leaves behind
    stale.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    model = train(
        tiny_views[0], config, out_dir=tmp_path, progress=False, meta={"data": "b"}, fresh=True
    )
    assert not stale.exists()
    assert model.train_stats["start_step"] == 0 and model.train_stats["steps"] == 3
    assert load_checkpoint(tmp_path / "checkpoint.pt")[1]["meta"] == {"data": "b"}


def test_a_checkpoint_carrying_code_is_refused(tmp_path):
    import os

    class RunsCode:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    crafted = tmp_path / "checkpoint.pt"
    torch.save({"format": "mp3d.nerf", "version": 1, "spec": RunsCode()}, crafted)
    with pytest.raises(
        ValueError, match="checkpoint.pt: refused: the file holds a Python object .posix.system"
    ):
        load_checkpoint(crafted)
    assert not (tmp_path / "ran").exists()


def test_a_checkpoint_without_its_keys_is_an_error(tmp_path):
    partial = tmp_path / "checkpoint.pt"
    torch.save({"format": "mp3d.nerf", "version": 1, "spec": {}}, partial)
    with pytest.raises(ValueError, match="checkpoint.pt: NeRF checkpoint lacks elapsed, model"):
        load_checkpoint(partial)


def test_render_checkpoint_evaluates_the_views_training_held_out(tiny_demo_scene, tmp_path):
    import json

    from mp3d.nerf.pipeline import fit_scene, render_checkpoint

    folder = tmp_path / "no_test_split"  # so the hold-out rule decides the evaluation views
    folder.mkdir()
    meta = json.loads((tiny_demo_scene / "transforms_train.json").read_text())
    meta["frames"] = [
        dict(meta["frames"][i % 4], file_path=str(tiny_demo_scene / "train" / f"r_{i % 4}"))
        for i in range(6)
    ]
    (folder / "transforms_train.json").write_text(json.dumps(meta))
    config = TrainConfig(steps=2, **{**TINY_HASH, "batch_rays": 64})
    fitted = fit_scene(
        folder, tmp_path / "fit", config, holdout=3, turntable_frames=1, progress=False
    )
    assert fitted["eval_views"] == 2  # views 0 and 3
    rendered = render_checkpoint(
        tmp_path / "fit" / "checkpoint.pt", tmp_path / "render", n_frames=1, progress=False
    )
    names = [
        v["name"]
        for v in json.loads((tmp_path / "render" / "test" / "metrics.json").read_text())["views"]
    ]
    assert len(names) == 2 and rendered["psnr"] == pytest.approx(fitted["psnr"], abs=1e-4)


def test_nerf_trains_on_a_colmap_folder(tiny_views, tmp_path):
    """Any PosedViews trains a NeRF: here the demo views written as a COLMAP model (opaque
    images composited on white, a few points for the scene box and depth range)."""
    from mp3d.cameras import invert_rigid
    from mp3d.data.colmap import write_colmap_text
    from mp3d.io import save_image
    from mp3d.nerf.pipeline import fit_scene

    views = tiny_views[0].subset(range(9))
    root = tmp_path / "colmap"
    names = [f"img_{i:02d}.png" for i in range(len(views))]
    for name, image in zip(names, views.images):
        save_image(image, root / "images" / name)
    corners = torch.tensor(
        [[x, y, z] for x in (-1.0, 1.0) for y in (-1.0, 1.0) for z in (-1.0, 1.0)]
    )
    write_colmap_text(
        root,
        views.Ks,
        invert_rigid(views.c2ws.double()),
        names,
        32,
        32,
        corners,
        torch.full((8, 3), 0.5),
    )
    runs = {}
    for steps in (1, 150):
        config = TrainConfig(steps=steps, **{**TINY_HASH, "batch_rays": 512})
        runs[steps] = fit_scene(
            root, tmp_path / f"fit{steps}", config, turntable_frames=1, progress=False
        )
    summary = runs[150]
    assert summary["format"] == "colmap" and summary["eval_views"] == 2  # images 0 and 8
    assert (tmp_path / "fit150" / "test" / "img_08_rgb.png").is_file()
    # Opaque images: the field must learn the white backdrop as well, so it is slow to learn
    # here, but it learns.
    assert summary["psnr"] > runs[1]["psnr"] + 1.5, (runs[1]["psnr"], summary["psnr"])
