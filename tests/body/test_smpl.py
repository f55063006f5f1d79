"""mp3d.body.SMPL: exactness against an independent einsum implementation, kinematics, batches,
dtypes, gradients and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mp3d._backend import available_impls
from mp3d.body import BUILTIN_BODY, SMPL, SMPL_JOINT_NAMES, load_model_file
from mp3d.body.smpl import JointModel, batch_rodrigues
from mp3d.ops.skinning import kinematics_reference
from tests.body.helpers import (
    _skew,
    einsum_forward,
    random_model,
    random_params,
    write_official_pkl,
)


@pytest.fixture(scope="module")
def builtin() -> SMPL:
    return SMPL()


@pytest.fixture(scope="module")
def builtin_arrays() -> dict[str, np.ndarray]:
    return load_model_file(BUILTIN_BODY)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    error = float((a.double() - b.double()).abs().max())
    assert error <= atol, f"max error {error:.3g} > {atol:g}"


def test_builtin_matches_einsum_reference(builtin, builtin_arrays):
    params = random_params(3, builtin.n_betas, seed=1)
    out = builtin(**params)
    vertices, joints = einsum_forward(builtin_arrays, **params)
    _close(out.vertices, vertices, 1e-5)
    _close(out.joints, joints, 1e-5)
    assert out.vertices.dtype == torch.float32 and out.faces.dtype == torch.int64
    assert out.vertices.shape == (3, builtin.n_vertices, 3) and out.joints.shape == (3, 24, 3)


@pytest.mark.parametrize("suffix", [".npz", ".pkl"])
def test_official_format_model_matches_einsum_reference(tmp_path, suffix):
    model = random_model(n_vertices=80, n_betas=10, seed=2)
    path = tmp_path / f"model{suffix}"
    if suffix == ".npz":
        np.savez(path, **model)
    else:
        write_official_pkl(model, path)
    params = random_params(2, 7, seed=3, dtype=torch.float64)  # fewer betas than the model has
    vertices, joints = einsum_forward(model, **params)
    out64 = SMPL(path, dtype=torch.float64)(**params)
    _close(out64.vertices, vertices, 1e-10)
    _close(out64.joints, joints, 1e-10)
    out32 = SMPL(path)(**{k: v.float() for k, v in params.items()})
    _close(out32.vertices, vertices, 1e-5)
    _close(out32.joints, joints, 1e-5)
    assert torch.equal(out32.faces, torch.as_tensor(model["f"].astype(np.int64)))


def test_zero_pose_and_shape_give_the_template(builtin, builtin_arrays):
    out = builtin()
    assert out.vertices.shape == (1, builtin.n_vertices, 3)
    _close(out.vertices[0], torch.as_tensor(builtin_arrays["v_template"]), 1e-6)
    rest = builtin_arrays["J_regressor"] @ builtin_arrays["v_template"]
    _close(out.joints[0], torch.as_tensor(rest), 1e-6)
    eye = torch.eye(4).expand(1, 24, 4, 4)
    _close(out.skinning_transforms, eye, 1e-6)


def test_rotating_the_left_elbow_moves_only_the_forearm_and_hand(builtin):
    elbow = SMPL_JOINT_NAMES.index("left_elbow")
    below = [elbow, SMPL_JOINT_NAMES.index("left_wrist"), SMPL_JOINT_NAMES.index("left_hand")]
    pose = builtin.body_pose_from({"left_elbow": (0.0, -1.5, 0.0)})
    rest, bent = builtin(), builtin(body_pose=pose)
    moved = (bent.vertices - rest.vertices).norm(dim=-1)[0]
    carried = builtin.lbs_weights[:, below].sum(dim=1)
    assert float(moved[carried == 0].max()) == 0.0  # everything else stays exactly put
    assert float(moved[carried > 0.5].min()) > 1e-3
    assert float(moved.max()) > 0.2  # the hand swings by tens of centimetres
    joint_moved = (bent.joints - rest.joints).norm(dim=-1)[0]
    assert set(torch.nonzero(joint_moved > 1e-6).flatten().tolist()) == set(below[1:])

    def forearm(out) -> torch.Tensor:
        return (out.joints[0, below[1]] - out.joints[0, elbow]).norm()

    _close(forearm(bent), forearm(rest), 1e-6)


def test_batch_of_three_equals_three_single_bodies(builtin):
    params = random_params(3, 5, seed=4)
    batch = builtin(**params)
    for b in range(3):
        single = builtin(**{k: v[b : b + 1] for k, v in params.items()})
        _close(batch.vertices[b], single.vertices[0], 1e-6)
        _close(batch.joints[b], single.joints[0], 1e-6)
    only_pose = builtin(body_pose=params["body_pose"])  # batch size from the one given
    assert only_pose.vertices.shape[0] == 3


def test_float64_model(builtin_arrays):
    model = SMPL(dtype=torch.float64)
    params = random_params(2, model.n_betas, seed=5, dtype=torch.float64)
    out = model(**params)
    assert out.vertices.dtype == torch.float64
    vertices, joints = einsum_forward(builtin_arrays, **params)
    _close(out.vertices, vertices, 1e-10)
    _close(out.joints, joints, 1e-10)


def test_gradients_reach_betas_and_pose_and_fit_joints(builtin):
    target = builtin(**random_params(1, builtin.n_betas, seed=6, scale=0.3)).joints.detach()
    betas = torch.zeros(1, builtin.n_betas, requires_grad=True)
    pose = torch.zeros(1, 69, requires_grad=True)
    orient = torch.zeros(1, 3, requires_grad=True)
    transl = torch.zeros(1, 3, requires_grad=True)
    optimizer = torch.optim.Adam([betas, pose, orient, transl], lr=0.05)
    losses = []
    for _ in range(40):
        optimizer.zero_grad()
        joints = builtin(betas=betas, body_pose=pose, global_orient=orient, transl=transl).joints
        loss = ((joints - target) ** 2).sum(-1).mean()
        loss.backward()
        for p in (betas, pose, orient, transl):
            assert p.grad is not None and torch.isfinite(p.grad).all()
        losses.append(loss.item())
        optimizer.step()
    assert float(betas.grad.abs().sum()) > 0 and float(pose.grad.abs().sum()) > 0
    assert losses[-1] < 0.2 * losses[0], losses


def test_gradients_through_vertices_at_zero_pose(builtin):
    pose = torch.zeros(1, 69, requires_grad=True)
    betas = torch.zeros(1, 3, requires_grad=True)
    builtin(betas=betas, body_pose=pose).vertices.square().sum().backward()
    assert torch.isfinite(pose.grad).all() and float(pose.grad.abs().max()) > 0
    assert torch.isfinite(betas.grad).all() and float(betas.grad.abs().max()) > 0


@pytest.mark.skipif("cpp" not in available_impls(), reason="C++ kernels not built")
def test_kernel_and_torch_reference_agree(builtin_arrays):
    params = random_params(2, 4, seed=7)
    kernel = SMPL(builtin_arrays, impl="cpp")(**params).vertices
    reference = SMPL(builtin_arrays, impl="torch")(**params).vertices
    _close(kernel, reference, 1e-5)


def test_rodrigues_matches_matrix_exponential():
    g = torch.Generator().manual_seed(8)
    vectors = torch.randn(50, 3, generator=g, dtype=torch.float64)
    vectors[:10] *= 1e-5  # below the Taylor threshold
    vectors[10] = 0.0
    expected = torch.linalg.matrix_exp(_skew(vectors))
    _close(batch_rodrigues(vectors), expected, 1e-14)
    small = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(batch_rodrigues, (small + 1e-4,))
    torch.autograd.gradcheck(
        batch_rodrigues, (torch.randn(4, 3, dtype=torch.float64, requires_grad=True),)
    )


def test_body_pose_from_joint_names(builtin):
    pose = builtin.body_pose_from({"right_knee": (1.0, 0.0, 0.0), 18: (0.0, 0.5, 0.0)})
    assert pose.shape == (1, 69)
    knee = SMPL_JOINT_NAMES.index("right_knee") - 1
    assert pose[0, 3 * knee : 3 * knee + 3].tolist() == [1.0, 0.0, 0.0]
    assert float(pose.abs().sum()) == 1.5
    with pytest.raises(ValueError, match="unknown joint 'elbow'"):
        builtin.body_pose_from({"elbow": (0.0, 0.0, 1.0)})
    with pytest.raises(ValueError, match="global_orient"):
        builtin.body_pose_from({"pelvis": (0.0, 0.0, 1.0)})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"betas": torch.zeros(1, 14)}, "betas"),
        ({"betas": torch.zeros(10)}, "betas"),
        ({"body_pose": torch.zeros(1, 72)}, "body_pose"),
        ({"body_pose": torch.zeros(1, 23, 3)}, "body_pose"),
        ({"global_orient": torch.zeros(1, 4)}, "global_orient"),
        ({"transl": torch.zeros(2, 3), "betas": torch.zeros(1, 3)}, "transl"),
        ({"transl": torch.zeros(1, 3, dtype=torch.float64)}, "transl"),
        ({"body_pose": torch.full((1, 69), float("nan"))}, "body_pose"),
        ({"betas": np.zeros((1, 3), dtype=np.float32)}, "betas"),
    ],
)
def test_bad_inputs_name_the_argument(builtin, kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name} "):
        builtin(**kwargs)


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        SMPL(dtype=torch.float16)
    with pytest.raises(ValueError, match="impl"):
        SMPL(impl="fast")
    with pytest.raises(FileNotFoundError):
        SMPL(tmp_path / "SMPL_MALE.pkl")


def test_outputs_follow_their_definitions(builtin, builtin_arrays):
    """rest_vertices, joint_transforms and skinning_transforms against the formulas written
    out (no precomputed constants): v_posed = T + S beta + P (R - I), G from the rest joints
    J_R v_shaped, joint_transforms carrying transl, bottom rows [0, 0, 0, 1]."""
    model = SMPL(builtin_arrays, dtype=torch.float64)
    params = random_params(2, 6, seed=11, dtype=torch.float64)
    out = model(**params)
    arrays = {k: torch.as_tensor(v) for k, v in builtin_arrays.items() if k != "kintree_table"}
    v_shaped = arrays["v_template"].double() + torch.einsum(
        "bs,vcs->bvc", params["betas"], arrays["shapedirs"].double()[..., :6]
    )
    rest_joints = torch.einsum("jv,bvc->bjc", arrays["J_regressor"].double(), v_shaped)
    pose = torch.cat([params["global_orient"], params["body_pose"]], 1).view(2, 24, 3)
    rot_mats, world, skin = kinematics_reference(pose, rest_joints, model.parents)
    features = (rot_mats[:, 1:] - torch.eye(3, dtype=torch.float64)).reshape(2, -1)
    posedirs = arrays["posedirs"].double().reshape(-1, 207)
    v_posed = v_shaped + (features @ posedirs.T).view(2, -1, 3)
    _close(out.rest_vertices, v_posed, 1e-12)
    _close(out.skinning_transforms, skin, 1e-12)
    _close(out.joint_transforms[..., :3, :3], world[..., :3, :3], 1e-12)
    _close(out.joint_transforms[..., :3, 3], world[..., :3, 3] + params["transl"][:, None], 1e-12)
    _close(out.joints, out.joint_transforms[..., :3, 3], 0.0)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert bool((out.joint_transforms[..., 3, :] == bottom).all())
    # The joints-only model gives the same joints.
    _close(JointModel(model)(**params), out.joints, 1e-12)


def test_precomputed_constants_move_with_the_module(builtin_arrays):
    """.double() / .to() carry the derived constants (non-persistent buffers) along."""
    params = random_params(2, 5, seed=12, dtype=torch.float64)
    moved = SMPL(builtin_arrays).double()
    assert moved.blend_dirs.dtype == torch.float64 and moved.joint_dirs.dtype == torch.float64
    _close(
        moved(**params).vertices, SMPL(builtin_arrays, dtype=torch.float64)(**params).vertices, 1e-6
    )
    assert "blend_dirs" not in moved.state_dict()


def test_value_checks_follow_the_switch(builtin):
    """mp3d.set_checks(False) skips the finite checks of the inputs (NaN flows through)."""
    from mp3d.ops._validation import checks

    nan_pose = torch.full((1, 69), float("nan"))
    with checks(False):
        assert bool(torch.isnan(builtin(body_pose=nan_pose).vertices).any())
        with pytest.raises(ValueError, match="^body_pose must have shape"):
            builtin(body_pose=nan_pose[:, :68])
    with pytest.raises(ValueError, match="^body_pose has non-finite values"):
        builtin(body_pose=nan_pose)


@pytest.mark.gpu
def test_cuda_matches_cpu(builtin):
    params = random_params(4, builtin.n_betas, seed=9)
    cpu = builtin(**params)
    model = SMPL().to("cuda")
    gpu = model(**{k: v.cuda() for k, v in params.items()})
    assert gpu.vertices.device.type == "cuda" and gpu.faces.device.type == "cuda"
    _close(gpu.vertices.cpu(), cpu.vertices, 1e-5)
    _close(gpu.joints.cpu(), cpu.joints, 1e-5)
