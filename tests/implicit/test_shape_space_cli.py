"""`mp3d implicit train` and `mp3d implicit reconstruct`: a run folder (cached shape set,
checkpoint, metrics) that resumes, and meshes reconstructed from point clouds by trained
ONet and DeepSDF models, in the cloud's own coordinates."""

from __future__ import annotations

import dataclasses
import functools
import json

import numpy as np
import pytest
import torch
import trimesh

from mp3d.cli import main
from mp3d.implicit.deepsdf import DeepSDFConfig, train_deepsdf
from mp3d.implicit.onet import ONetConfig, train_onet
from mp3d.implicit.shape_set import sample_shape
from mp3d.implicit.shape_space import reconstruct_mesh, shape_space, space_of_checkpoint
from mp3d.io import write_checkpoint

RADIUS = 0.35


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def sphere():
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS)
    return sample_shape(mesh, "sphere", n_surface=2000, n_uniform=2000, n_near=2000)


@pytest.fixture(scope="module")
def checkpoints(sphere, tmp_path_factory):
    """Run folders of an ONet and a DeepSDF model trained on the one sphere."""
    root = tmp_path_factory.mktemp("runs")
    onet = ONetConfig(
        steps=120,
        latent=16,
        hidden=32,
        blocks=2,
        encoder_hidden=16,
        encoder_blocks=2,
        cloud_points=64,
        query_points=256,
        shapes_per_batch=2,
        lr=3e-3,
    )
    train_onet([sphere], onet, root / "onet", progress=False)
    deepsdf = DeepSDFConfig(
        steps=150,
        latent_size=8,
        hidden=64,
        layers=4,
        skip=2,
        shapes_per_batch=1,
        samples_per_shape=512,
        lr=3e-3,
        lr_codes=1e-2,
        infer_iterations=60,
        infer_samples=512,
    )
    train_deepsdf([sphere], deepsdf, root / "deepsdf", progress=False)
    return {"onet": root / "onet", "deepsdf": root / "deepsdf"}


@pytest.fixture(scope="module")
def world_cloud(tmp_path_factory):
    """A sphere of radius 2 around (5, -1, 3): the model must come back to these units."""
    points = trimesh.creation.icosphere(subdivisions=4, radius=2.0).vertices + [5.0, -1.0, 3.0]
    path = tmp_path_factory.mktemp("cloud") / "sphere.xyz"
    np.savetxt(path, points)
    return path


@pytest.mark.parametrize("name", ["onet", "deepsdf"])
def test_reconstruct_writes_the_mesh_in_the_clouds_coordinates(
    name, checkpoints, world_cloud, tmp_path, capsys
):
    out = tmp_path / f"{name}.ply"
    argv = ["implicit", "reconstruct", str(checkpoints[name]), str(world_cloud), "--out", str(out)]
    assert main([*argv, "--upsampling-steps", "1"]) == 0
    assert name in capsys.readouterr().out
    mesh = trimesh.load(out)
    centre = np.array([5.0, -1.0, 3.0])
    radii = np.linalg.norm(mesh.vertices - centre, axis=1)
    # The unit cube of the cloud's box has side 4 here; the sphere in it has radius 0.5,
    # the trained one 0.35: the model's radius comes back scaled by 4 (1.4), loosely.
    assert abs(np.median(radii) - 4 * RADIUS) < 0.4, np.median(radii)
    assert np.allclose(mesh.vertices.mean(axis=0), centre, atol=0.3)


def test_checkpoints_are_recognised_by_their_format(checkpoints, tmp_path):
    for name, folder in checkpoints.items():
        space, path = space_of_checkpoint(folder)
        assert space.name == name and path == folder / "checkpoint.pt"
    other = write_checkpoint(tmp_path / "nerf.pt", "mp3d.nerf", 1, {"x": torch.zeros(1)})
    with pytest.raises(ValueError, match="nerf.pt.*not one of a shape space"):
        space_of_checkpoint(other)
    with pytest.raises(ValueError, match="model must be one of"):
        shape_space("pixelcnn")


def test_reconstruct_refuses_bad_clouds(checkpoints):
    space, path = space_of_checkpoint(checkpoints["onet"])
    model = space.load(path, None)
    with pytest.raises(ValueError, match="points must have shape"):
        reconstruct_mesh(space, model, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="points must be finite"):
        reconstruct_mesh(space, model, np.array([[0.0, 0.0, np.nan], [1.0, 1.0, 1.0]]))


def test_train_builds_caches_scores_and_resumes(tmp_path, capsys, monkeypatch):
    from mp3d.implicit import shape_space

    spaces = shape_space._spaces()
    tiny = functools.partial(
        ONetConfig,
        latent=8,
        hidden=16,
        blocks=1,
        encoder_hidden=8,
        encoder_blocks=2,
        cloud_points=32,
        query_points=128,
        shapes_per_batch=2,
    )
    spaces["onet"] = dataclasses.replace(spaces["onet"], config_class=tiny)
    monkeypatch.setattr(shape_space, "_spaces", lambda: spaces)
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(meshes / "box.obj")
    trimesh.creation.icosphere(subdivisions=3).export(meshes / "ball.obj")
    out = tmp_path / "run"
    argv = [
        "implicit",
        "train",
        "onet",
        str(meshes),
        "--out",
        str(out),
        "--copies",
        "1",
        "--procedural",
        "1",
        "--hold-out",
        "ball",
        "--eval-procedural",
        "1",
        "--quiet",
    ]
    assert main([*argv, "--steps", "2"]) == 0
    printed = capsys.readouterr().out
    assert "on 2 shapes, 2 steps" in printed and "held" in printed and "unseen" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert [row["shape"] for row in report["held_out_meshes"]] == ["ball@0"]
    assert [row["shape"] for row in report["unseen_procedural"]] == ["procedural-10000"]
    assert 0.0 <= report["held_out_meshes"][0]["iou"] <= 1.0
    cached = (out / "shapes.npz").stat().st_mtime_ns
    assert json.loads((out / "shapes.json").read_text())["meshes"] == ["box"]

    assert main([*argv, "--steps", "3", "--eval-procedural", "0"]) == 0
    resumed = capsys.readouterr().out
    assert "3 steps" in resumed and "resumed from step 2" in resumed
    assert (out / "shapes.npz").stat().st_mtime_ns == cached  # the same set, not resampled
    assert json.loads((out / "metrics.json").read_text())["steps"] == 3
