"""`mp3d body pose`: writes the posed mesh of the built-in body or of a model file."""

from __future__ import annotations

import numpy as np
import torch
import trimesh

from mp3d.body import SMPL
from mp3d.cli import main
from tests.body.helpers import random_model


def test_body_pose_writes_the_posed_mesh(tmp_path, capsys):
    out = tmp_path / "posed.obj"
    assert (
        main(
            [
                "body",
                "pose",
                "--out",
                str(out),
                "--pose",
                "left_elbow=0,-90,0",
                "right_knee=45,0,0",
                "--global-orient",
                "0",
                "30",
                "0",
                "--degrees",
                "--betas",
                "1",
                "-0.5",
                "--transl",
                "0",
                "0",
                "2",
            ]
        )
        == 0
    )
    assert str(out) in capsys.readouterr().out
    model = SMPL()
    rotations = {"left_elbow": (0.0, -np.pi / 2, 0.0), "right_knee": (np.pi / 4, 0.0, 0.0)}
    expected = model(
        betas=torch.tensor([[1.0, -0.5]]),
        body_pose=model.body_pose_from(rotations),
        global_orient=torch.tensor([[0.0, np.pi / 6, 0.0]]),
        transl=torch.tensor([[0.0, 0.0, 2.0]]),
    ).vertices[0]
    mesh = trimesh.load(out, process=False)
    np.testing.assert_allclose(mesh.vertices, expected.detach().numpy(), atol=1e-5)


def test_body_pose_with_a_model_file(tmp_path, capsys):
    model = random_model(n_vertices=30, seed=1)
    np.savez(tmp_path / "model.npz", **model)
    assert (
        main(
            [
                "body",
                "pose",
                "--model",
                str(tmp_path / "model.npz"),
                "--out",
                str(tmp_path / "m.ply"),
                "--pose",
                "3=0.1,0.2,0.3",
            ]
        )
        == 0
    )
    assert len(trimesh.load(tmp_path / "m.ply", process=False).vertices) == 30


def test_body_pose_errors_are_clear(tmp_path, capsys):
    out = str(tmp_path / "x.obj")
    assert main(["body", "pose", "--out", out, "--pose", "left_elbow=1,2"]) == 2
    assert "JOINT=RX,RY,RZ" in capsys.readouterr().err
    assert main(["body", "pose", "--out", out, "--pose", "elbow=0,0,1"]) == 2
    assert "unknown joint 'elbow'" in capsys.readouterr().err
    assert main(["body", "pose", "--out", out, "--model", str(tmp_path / "none.pkl")]) == 2
    assert "none.pkl" in capsys.readouterr().err
