"""mp3d.body.fit: SMPLify-style fitting to 2D keypoints, learned gradient descent, keypoint
files and `mp3d body fit`."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import trimesh

from mp3d.body import SMPL
from mp3d.body.evaluation import pa_mpjpe, procrustes_align, sample_bodies
from mp3d.body.fit import (
    HYPEREXTENSION,
    JointModel,
    SMPLifyConfig,
    angle_prior,
    axis_angle_to_matrix,
    fit_smplify,
    gmof,
    initial_depth,
    matrix_to_axis_angle,
    project_points,
)
from mp3d.body.keypoints import KeypointFile, keypoints_from_joints, load_keypoints
from mp3d.body.lgd import LGDConfig, LGDNet, fit_lgd, gradient_descent, train_lgd
from mp3d.cli import main
from tests.body.helpers import random_model, random_params

# Fewer iterations than the defaults: enough for noise-free keypoints of gentle poses.
QUICK = SMPLifyConfig(torso_iterations=40, iterations=(60, 60, 80))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The fits work on [B,24,3] tensors: threads only add overhead (and contention)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model() -> SMPL:
    return SMPL()


@pytest.fixture(scope="module")
def bodies(model) -> object:
    """Two gentle random bodies, turned up to 60 degrees, with 1-pixel keypoint noise."""
    return sample_bodies(
        model, 2, torch.Generator().manual_seed(3), pose_scale=0.3, noise_px=1.0, yaw=(-1.0, 1.0)
    )


@pytest.fixture(scope="module")
def fitted(model, bodies):
    return fit_smplify(model, bodies.keypoints, bodies.K, config=QUICK)


# ----------------------------------------------------------------------------- building blocks


@pytest.mark.parametrize("source", ["builtin", "random"])
def test_joint_model_matches_smpl_joints(source):
    model = (
        SMPL(dtype=torch.float64)
        if source == "builtin"
        else SMPL(random_model(seed=2), dtype=torch.float64)
    )
    params = random_params(3, 8, seed=5, dtype=torch.float64)
    expected = model(**params).joints
    torch.testing.assert_close(JointModel(model)(**params), expected, rtol=0, atol=1e-10)


def test_matrix_to_axis_angle_inverts_rodrigues():
    g = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(
        torch.randn(7, 3, generator=g, dtype=torch.float64), dim=1
    )
    angles = torch.tensor([0.0, 1e-7, 0.3, 1.5, 3.0, math.pi - 1e-6, math.pi], dtype=torch.float64)
    vectors = directions * angles[:, None]
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(vectors))
    torch.testing.assert_close(
        axis_angle_to_matrix(recovered), axis_angle_to_matrix(vectors), rtol=0, atol=1e-9
    )
    torch.testing.assert_close(recovered[:5], vectors[:5], rtol=0, atol=1e-9)  # angle < pi


def test_procrustes_undoes_a_similarity_transform():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(2, 24, 3, generator=g, dtype=torch.float64)
    rotation = axis_angle_to_matrix(
        torch.tensor([[0.3, -1.2, 2.0], [2.5, 0.1, 0.0]], dtype=torch.float64)
    )
    moved = 1.7 * target @ rotation.transpose(1, 2) + torch.tensor(
        [0.5, -2.0, 3.0], dtype=torch.float64
    )
    torch.testing.assert_close(procrustes_align(moved, target), target, rtol=0, atol=1e-9)
    assert float(pa_mpjpe(moved, target).max()) < 1e-9


def test_gmof_matches_its_closed_form():
    residual = np.array([0.0, 0.5, 3.0, 10.0, 100.0, 1e4])
    sigma = 10.0
    expected = sigma**2 * residual**2 / (sigma**2 + residual**2)
    value = gmof(torch.tensor(residual**2, dtype=torch.float64), sigma)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-12)
    assert value[1] == pytest.approx(0.25, rel=1e-2)  # ~ r^2 well below sigma
    assert value[-1] == pytest.approx(sigma**2, rel=1e-5)  # -> sigma^2 for outliers
    with pytest.raises(ValueError, match="sigma"):
        gmof(torch.ones(3), 0.0)


def test_angle_prior_is_zero_for_natural_bends_and_positive_for_hyperextension(model):
    natural = model.body_pose_from(
        {
            "left_elbow": (0, -1.5, 0),
            "right_elbow": (0, 1.5, 0),
            "left_knee": (1.2, 0, 0),
            "right_knee": (0.4, 0, 0),
        }
    )
    rest = torch.zeros_like(natural)
    assert float(angle_prior(natural, model.joint_names)) == 0.0
    assert float(angle_prior(rest, model.joint_names)) == 0.0
    for name, (axis, sign) in HYPEREXTENSION.items():
        rotation = [0.0, 0.0, 0.0]
        rotation[axis] = 0.4 * sign
        value = float(angle_prior(model.body_pose_from({name: rotation}), model.joint_names))
        assert value == pytest.approx(math.expm1(0.4) ** 2, rel=1e-5)


@pytest.mark.parametrize("name", sorted(HYPEREXTENSION))
def test_hyperextension_direction_matches_the_body(model, name):
    """Bending the wrong way moves forearms behind the body (-z) and shins in front (+z)."""
    axis, sign = HYPEREXTENSION[name]
    child = {
        "left_elbow": "left_wrist",
        "right_elbow": "right_wrist",
        "left_knee": "left_ankle",
        "right_knee": "right_ankle",
    }[name]
    rotation = [0.0, 0.0, 0.0]
    rotation[axis] = 0.6 * sign
    joints = model(body_pose=model.body_pose_from({name: rotation})).joints[0]
    offset_z = float(
        joints[model.joint_names.index(child), 2] - joints[model.joint_names.index(name), 2]
    )
    expected_z = -1.0 if "elbow" in name else 1.0
    assert offset_z * expected_z > 0.05


def test_initial_depth_by_similar_triangles(model, bodies):
    joints = JointModel(model)
    depth = initial_depth(joints, bodies.clean_keypoints, bodies.K, torch.ones(2, model.n_joints))
    true_depth = bodies.joints[:, 0, 2]
    assert float(((depth - true_depth) / true_depth).abs().max()) < 0.25


# ----------------------------------------------------------------------------- SMPLify


def test_fit_recovers_keypoints_and_3d_joints(fitted, bodies):
    assert fitted.betas.shape == (2, 10) and fitted.body_pose.shape == (2, 69)
    assert fitted.joints.shape == (2, 24, 3) and fitted.joint_errors.shape == (2, 24)
    assert float(fitted.mean_error().max()) < 2.0  # pixels, keypoint noise 1 px per axis
    pa = 1000 * pa_mpjpe(fitted.joints, bodies.joints)
    assert float(pa.max()) < 40.0, pa  # mm
    # The fitted joints also land near the true ones without alignment (depth included).
    assert float((fitted.joints - bodies.joints).norm(dim=-1).mean()) < 0.25
    projected, _ = project_points(fitted.joints, bodies.K)
    torch.testing.assert_close(projected, fitted.projected)


def test_stages_improve_on_the_start(fitted):
    assert set(fitted.losses) == {"torso", "full_1_prior_x10", "full_2_prior_x3", "full_3_prior_x1"}
    assert all(len(h) == n for h, n in zip(fitted.losses.values(), (40, 60, 60, 80), strict=True))
    for history in fitted.losses.values():
        assert history[-1] < history[0]
    initial = fitted.initial_joint_errors.mean(dim=1)
    assert bool((fitted.mean_error() < 0.2 * initial).all())


def test_batched_fit_equals_separate_fits(model, bodies):
    config = dataclasses.replace(QUICK, torso_iterations=10, iterations=(10, 10, 10))
    together = fit_smplify(model, bodies.keypoints, bodies.K, config=config)
    for i in range(2):
        alone = fit_smplify(model, bodies.keypoints[i], bodies.K[i], config=config)
        torch.testing.assert_close(alone.body_pose[0], together.body_pose[i], rtol=0, atol=1e-4)
        torch.testing.assert_close(alone.transl[0], together.transl[i], rtol=0, atol=1e-4)


def test_zero_confidence_ignores_an_outlier(model, bodies):
    config = dataclasses.replace(QUICK, torso_iterations=20, iterations=(20, 20, 20))
    keypoints = bodies.keypoints[:1].clone()
    confidences = torch.ones(1, model.n_joints)
    wrist = model.joint_names.index("left_wrist")
    confidences[0, wrist] = 0.0
    clean = fit_smplify(model, keypoints, bodies.K[0], confidences, config=config)
    keypoints[0, wrist] += torch.tensor([400.0, -300.0])  # far off, but not trusted
    outlier = fit_smplify(model, keypoints, bodies.K[0], confidences, config=config)
    for name, value in clean.params().items():
        torch.testing.assert_close(outlier.params()[name], value, rtol=0, atol=0)
    # Trusted, the far outlier barely counts (Geman-McClure saturates beyond sigma = 100 px)
    # while a near one (30 px, within sigma) pulls the wrist (the hand keypoint holds it back).
    trusted = fit_smplify(model, keypoints, bodies.K[0], config=config)
    moved = (trusted.projected[0, wrist] - clean.projected[0, wrist]).norm()
    assert float(moved) < 5.0
    keypoints[0, wrist] = bodies.keypoints[0, wrist] + torch.tensor([30.0, 0.0])
    near = fit_smplify(model, keypoints, bodies.K[0], config=config)
    assert float(near.projected[0, wrist, 0] - clean.projected[0, wrist, 0]) > 8.0


def test_fit_with_a_viewmat_returns_world_parameters(model):
    params = {
        "body_pose": model.body_pose_from(
            {"left_elbow": (0, -1.0, 0), "right_knee": (0.7, 0, 0), "left_shoulder": (0, 0, -0.8)}
        ),
        "global_orient": torch.tensor([[0.0, 0.5, 0.0]]),
        "transl": torch.tensor([[1.0, 0.2, -3.0]]),
    }
    joints = model(**params).joints[0]
    keypoint_file = keypoints_from_joints(joints, width=640, height=480)
    result = fit_smplify(
        model, keypoint_file.keypoints, keypoint_file.K, viewmat=keypoint_file.viewmat, config=QUICK
    )
    assert float(result.mean_error()[0]) < 1.0
    assert float(1000 * pa_mpjpe(result.joints, joints[None])[0]) < 40.0
    # World frame: the pelvis lands near the true one (similar triangles fix the depth).
    assert float((result.joints[0, 0] - joints[0]).norm()) < 0.2
    refit = model(**result.params()).joints
    torch.testing.assert_close(refit, result.joints, rtol=0, atol=1e-5)


def test_bad_inputs_raise_value_errors_naming_the_argument(model, bodies):
    K = bodies.K[0]
    keypoints = bodies.keypoints[0]
    cases = [
        ({"keypoints": keypoints[:10]}, "keypoints"),
        ({"keypoints": keypoints.clone().fill_(float("nan"))}, "keypoints"),
        ({"keypoints": "no"}, "keypoints"),
        ({"K": torch.eye(4)}, "K"),
        ({"K": -K}, "K"),
        ({"confidences": -torch.ones(24)}, "confidences"),
        ({"confidences": torch.ones(23)}, "confidences"),
        ({"confidences": torch.zeros(24)}, "confidences"),
        ({"viewmat": 2 * torch.eye(4)}, "viewmat"),
        ({"K": K.expand(3, 3, 3)}, "K"),
        ({"config": "quick"}, "config"),
    ]
    for change, name in cases:
        kwargs = {"keypoints": keypoints, "K": K, **change}
        with pytest.raises(ValueError, match=name):
            fit_smplify(model, **kwargs)
    # A config is checked when it is made, as every mp3d config is.
    for settings, name in (
        ({"sigma": 0.0}, "config.sigma"),
        ({"optimizer": "sgd"}, "config.optimizer"),
        ({"iterations": (1,)}, "config.prior_schedule"),
    ):
        with pytest.raises(ValueError, match=name):
            SMPLifyConfig(**settings)
    with pytest.raises(ValueError, match="model"):
        fit_smplify("smpl.pkl", keypoints, K)


def test_lbfgs_optimizer_runs(model, bodies):
    config = dataclasses.replace(
        QUICK, optimizer="lbfgs", torso_iterations=10, iterations=(10, 10, 10)
    )
    result = fit_smplify(model, bodies.keypoints[:1], bodies.K[:1], config=config)
    assert float(result.mean_error()[0]) < float(result.initial_joint_errors.mean())


# ----------------------------------------------------------------------------- learned descent


def test_lgd_training_lowers_its_loss_and_fits(model, tmp_path):
    config = LGDConfig(iterations=60, minutes=None, batch_size=16, hidden=64, steps=2, lr=3e-3)
    trained = train_lgd(model, config, checkpoint=tmp_path / "lgd.pt")
    assert trained.iterations == 60 and len(trained.losses) == 60
    assert np.mean(trained.losses[-10:]) < 0.95 * np.mean(trained.losses[:10])
    # On fresh bodies, two learned steps already cut the error of the start.
    data = sample_bodies(model, 16, torch.Generator().manual_seed(9), **config.sampling)
    result = fit_lgd(model, trained.net, data.keypoints, data.K)
    assert len(result.trajectory) == 3 and result.joints.shape == (16, 24, 3)
    start, end = (float(pa_mpjpe(j, data.joints).mean()) for j in result.trajectory[::2])
    assert end < 0.85 * start
    loaded = LGDNet.load(tmp_path / "lgd.pt")
    again = fit_lgd(model, loaded, data.keypoints, data.K)
    torch.testing.assert_close(again.body_pose, result.body_pose)
    with pytest.raises(ValueError, match="net"):
        fit_lgd(model, "lgd.pt", data.keypoints, data.K)
    with pytest.raises(ValueError, match="config.batch_size"):
        train_lgd(model, LGDConfig(batch_size=0))


def test_plain_gradient_descent_lowers_the_energy(model, bodies):
    result = gradient_descent(model, bodies.keypoints, bodies.K, steps=20, lr=2e-6)
    assert len(result.energies) == 21 and result.energies[-1] < result.energies[0]
    with pytest.raises(ValueError, match="lr"):
        gradient_descent(model, bodies.keypoints, bodies.K, lr=0.0)


# ----------------------------------------------------------------------------- files and CLI


def test_keypoint_file_round_trip_and_joint_names(tmp_path, model):
    joints = model(body_pose=model.body_pose_from({"left_knee": (1.0, 0, 0)})).joints[0]
    written = keypoints_from_joints(joints, model.joint_names, width=320, height=240)
    written.save(tmp_path / "kp.json")
    read = load_keypoints(tmp_path / "kp.json")
    np.testing.assert_allclose(read.keypoints, written.keypoints)
    np.testing.assert_allclose(read.K, written.K)
    np.testing.assert_allclose(read.viewmat, written.viewmat)
    assert (read.width, read.height) == (320, 240)
    assert ((read.keypoints >= 0) & (read.keypoints <= [320, 240])).all()  # body in view
    # Rows named in another order, three joints left out: matched by name, those get c = 0.
    order = [5, 0, 3, 1, 2] + list(range(6, 22))
    (tmp_path / "named.json").write_text(
        json.dumps(
            {
                "keypoints": written.keypoints[order].tolist(),
                "joint_names": [model.joint_names[i] for i in order],
                "intrinsics": {"fx": 300.0, "fy": 300.0},
                "width": 320,
                "height": 240,
            }
        )
    )
    named = load_keypoints(tmp_path / "named.json")
    np.testing.assert_allclose(named.K[:2, 2], [160.0, 120.0])  # centre from the size
    keypoints, confidences = named.for_model(model.joint_names)
    np.testing.assert_allclose(keypoints[order], written.keypoints[order])
    assert [j for j in range(24) if confidences[j] == 0] == [4, 22, 23]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"intrinsics": {"fx": 1, "fy": 1, "cx": 0, "cy": 0}}, "keypoints"),
        ({"keypoints": [[1, 2, 3, 4]], "K": np.eye(3).tolist()}, "keypoints"),
        ({"keypoints": [[1, 2]] * 24}, "intrinsics"),
        (
            {
                "keypoints": [[1, 2]] * 24,
                "K": np.eye(3).tolist(),
                "intrinsics": {"fx": 1, "fy": 1, "cx": 0, "cy": 0},
            },
            "intrinsics",
        ),
        ({"keypoints": [[1, 2]] * 24, "intrinsics": {"fx": 1, "fy": 1}}, "cx and cy"),
        ({"keypoints": [[1, 2]] * 24, "K": [[1, 0, 0], [0, 1, 0], [0, 0, 2]]}, "intrinsics"),
        (
            {"keypoints": [[1, 2]] * 24, "K": np.eye(3).tolist(), "confidences": [1] * 23},
            "confidences",
        ),
        ({"keypoints": [[1, 2, -1]] * 24, "K": np.eye(3).tolist()}, "confidences"),
        ({"keypoints": [[1, 2]] * 24, "K": np.eye(3).tolist(), "width": 10}, "height"),
        ({"keypoints": [[1, 2]] * 2, "K": np.eye(3).tolist(), "joint_names": ["a"]}, "joint_names"),
        ({"keypoints": [[1, 2]] * 24, "K": np.eye(3).tolist(), "viewmat": [[1, 0]]}, "viewmat"),
    ],
)
def test_bad_keypoint_files_raise_value_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message):
        load_keypoints(path)


def test_keypoint_names_the_model_lacks(model):
    file = KeypointFile(
        keypoints=np.zeros((2, 2)),
        confidences=np.ones(2),
        K=np.eye(3),
        joint_names=("pelvis", "tail"),
    )
    with pytest.raises(ValueError, match="tail"):
        file.for_model(model.joint_names)


def test_cli_pose_then_fit_round_trip(tmp_path, capsys, model):
    keypoints = tmp_path / "kp.json"
    assert (
        main(
            [
                "body",
                "pose",
                "--out",
                str(tmp_path / "posed.obj"),
                "--pose",
                "left_elbow=0,-60,0",
                "right_knee=40,0,0",
                "left_shoulder=0,0,-50",
                "--degrees",
                "--keypoints-out",
                str(keypoints),
            ]
        )
        == 0
    )
    assert str(keypoints) in capsys.readouterr().out
    out = tmp_path / "fit"
    assert main(["body", "fit", str(keypoints), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("params.npz", "mesh.obj", "fit.json"):
        assert str(out / name) in printed
    assert sorted(p.name for p in out.iterdir()) == ["fit.json", "mesh.obj", "params.npz"]
    params = np.load(out / "params.npz")
    assert {"betas", "body_pose", "global_orient", "transl", "joints", "joint_names"} <= set(
        params.files
    )
    summary = json.loads((out / "fit.json").read_text())
    assert summary["mean_error_px"] < 2.0 and summary["frame"] == "world (viewmat)"
    assert set(summary["joint_errors_px"]) == set(model.joint_names)
    assert list(summary["losses"]) == [
        "torso",
        "full_1_prior_x10",
        "full_2_prior_x3",
        "full_3_prior_x1",
    ]
    mesh = trimesh.load(out / "mesh.obj", process=False)
    assert len(mesh.vertices) == model.n_vertices
    # The fit lands on the posed body in its own (world) frame.
    posed = trimesh.load(tmp_path / "posed.obj", process=False)
    assert float(np.linalg.norm(mesh.vertices - posed.vertices, axis=1).mean()) < 0.1


def test_cli_fit_errors_are_clear(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keypoints": [[1, 2]] * 24}))
    assert main(["body", "fit", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "intrinsics" in capsys.readouterr().err
    assert main(["body", "fit", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")]) == 2
    assert "none.json" in capsys.readouterr().err


# ----------------------------------------------------------------------------- module layout


def _imported_modules(path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_keypoints_and_evaluation_do_not_import_the_fitting():
    """Saving and reading fits, and sampling test bodies, need no fitting algorithm."""
    from pathlib import Path

    import mp3d.body

    root = Path(mp3d.body.__file__).parent
    for name in ("keypoints.py", "evaluation.py", "result.py", "priors.py", "smpl.py"):
        imported = _imported_modules(root / name)
        assert not imported & {"mp3d.body.fit", "mp3d.body.lgd"}, name


def test_public_names_stay_importable_from_fit():
    import mp3d.body.fit as fit
    from mp3d import transforms
    from mp3d.body import priors, result, smpl

    assert fit.gmof is priors.gmof and fit.JOINT_LIMITS is priors.JOINT_LIMITS
    assert fit.FitResult is result.FitResult and fit.JointModel is smpl.JointModel
    assert fit.project_points is transforms.project_points
    assert fit.axis_angle_to_matrix is transforms.axis_angle_to_matrix
    for name in fit.__all__:
        assert hasattr(fit, name), name


def test_save_fit_rejects_a_config_that_is_not_a_dataclass(fitted, model, tmp_path):
    from mp3d.body.keypoints import save_fit

    with pytest.raises(ValueError, match="config must be a dataclass instance"):
        save_fit(fitted, model, tmp_path, config={"sigma": 100.0})
    paths = save_fit(fitted, model, tmp_path, config=QUICK)
    assert json.loads(paths["summary"].read_text())["config"]["torso_iterations"] == 40
