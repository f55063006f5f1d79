"""Linear blend skinning: C++/CUDA parity with the torch reference, float64 gradcheck, closed
forms (identity, rigid, translations), shared vs batched vertices, empty and bad input."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mp3d._backend import available_impls
from mp3d.body.skeleton import SMPL_PARENTS
from mp3d.ops.skinning import forward_kinematics, kinematics_reference, lbs, reference
from mp3d.transforms import axis_angle_to_matrix

KERNEL_IMPLS = [i for i in ("cpp",) if i in available_impls()]
needs_cpp = pytest.mark.skipif("cpp" not in available_impls(), reason="mp3d._C not available")


def random_rotations(
    shape: tuple[int, ...], g: torch.Generator, dtype=torch.float64
) -> torch.Tensor:
    """Uniformly random rotation matrices [*shape, 3, 3] (QR of Gaussian matrices)."""
    q, r = torch.linalg.qr(torch.randn(*shape, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q.to(dtype)


def skinning_inputs(
    n_batch: int = 3,
    n_vertices: int = 50,
    n_joints: int = 6,
    dtype: torch.dtype = torch.float32,
    sparse: bool = True,
    shared: bool = False,
    seed: int = 0,
    device: str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(vertices [B,V,3] or [V,3], weights [V,J] with rows summing to 1, transforms [B,J,4,4]).

    Sparse weights have 1 to 3 nonzero joints per vertex; the transforms are rotations
    scaled by up to 1.2 with translations (any affine top rows are allowed), and their bottom
    rows are random, because the op must ignore them.
    """
    g = torch.Generator().manual_seed(seed)
    raw = torch.rand(n_vertices, n_joints, generator=g, dtype=torch.float64) + 0.05
    if sparse and n_joints > 1:
        rank = torch.rand(n_vertices, n_joints, generator=g).argsort(dim=1)
        count = torch.randint(1, min(3, n_joints) + 1, (n_vertices, 1), generator=g)
        raw = raw * (rank < count)
    weights = raw / raw.sum(dim=1, keepdim=True)
    transforms = torch.randn(n_batch, n_joints, 4, 4, generator=g, dtype=torch.float64)
    scale = 0.8 + 0.4 * torch.rand(n_batch, n_joints, 1, 1, generator=g, dtype=torch.float64)
    transforms[..., :3, :3] = random_rotations((n_batch, n_joints), g) * scale
    shape = (n_vertices, 3) if shared else (n_batch, n_vertices, 3)
    vertices = torch.randn(*shape, generator=g, dtype=torch.float64)
    return tuple(t.to(dtype=dtype, device=device) for t in (vertices, weights, transforms))


def forward_backward(inputs, impl: str, grad_seed: int = 1, needs=(True, True, True)):
    """Posed vertices and the gradients of <posed, R> for a fixed random R (None if not needed)."""
    leaves = [t.detach().clone().requires_grad_(n) for t, n in zip(inputs, needs)]
    posed = lbs(*leaves, impl=impl)
    g = torch.Generator().manual_seed(grad_seed)
    upstream = torch.randn(posed.shape, generator=g, dtype=posed.dtype).to(posed.device)
    if any(needs):
        (posed * upstream).sum().backward()
    return posed.detach(), [leaf.grad for leaf in leaves]


# ----------------------------------------------------------------------------- parity


@needs_cpp
@pytest.mark.parametrize("n_batch", [1, 5, 8, 19])  # below, at and across lane groups of 8
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_cpp_matches_reference_float32(n_batch, shared, sparse):
    inputs = skinning_inputs(
        n_batch=n_batch, n_vertices=300, n_joints=24, sparse=sparse, shared=shared, seed=n_batch
    )
    expected, expected_grads = forward_backward(inputs, "torch")
    actual, actual_grads = forward_backward(inputs, "cpp")
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    for name, a, e in zip(("vertices", "weights", "transforms"), actual_grads, expected_grads):
        torch.testing.assert_close(a, e, rtol=1e-4, atol=1e-4, msg=name)


@needs_cpp
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cpp_matches_reference_many_tasks(dtype):
    """Enough vertices for several backward tasks (private dL/dtransforms buffers summed)."""
    inputs = skinning_inputs(n_batch=7, n_vertices=6000, n_joints=24, dtype=dtype, seed=3)
    expected, expected_grads = forward_backward(inputs, "torch")
    actual, actual_grads = forward_backward(inputs, "cpp")
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)
    for name, a, e in zip(("vertices", "weights", "transforms"), actual_grads, expected_grads):
        torch.testing.assert_close(a, e, rtol=tol, atol=tol * 10, msg=name)


@needs_cpp
@pytest.mark.parametrize(
    "needs", [(True, False, False), (False, True, False), (False, False, True), (False, True, True)]
)
def test_cpp_backward_for_some_inputs(needs):
    inputs = skinning_inputs(n_batch=4, n_vertices=100, n_joints=10, dtype=torch.float64, seed=4)
    _, expected = forward_backward(inputs, "torch", needs=needs)
    _, actual = forward_backward(inputs, "cpp", needs=needs)
    for need, a, e in zip(needs, actual, expected):
        if need:
            torch.testing.assert_close(a, e)
        else:
            assert a is None and e is None


@needs_cpp
def test_non_contiguous_inputs():
    vertices, weights, transforms = skinning_inputs(n_batch=4, n_vertices=40, seed=5)
    # The same values through strided views.
    vertices_t = vertices.transpose(0, 1).contiguous().transpose(0, 1)
    weights_t = weights.t().contiguous().t()
    transforms_t = transforms.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not (
        vertices_t.is_contiguous() or weights_t.is_contiguous() or transforms_t.is_contiguous()
    )
    torch.testing.assert_close(
        lbs(vertices_t, weights_t, transforms_t, impl="cpp"),
        reference(vertices, weights, transforms),
        rtol=1e-5,
        atol=1e-5,
    )


@needs_cpp
def test_cpp_baseline_isa_loops_match_reference():
    """The loops compiled for the baseline ISA (what runs without AVX2) agree too."""
    script = (
        "import torch\n"
        "from tests.ops.test_skinning import skinning_inputs, forward_backward\n"
        "for dtype in (torch.float32, torch.float64):\n"
        "    for shared in (False, True):\n"
        "        inputs = skinning_inputs(n_batch=11, n_vertices=500, n_joints=24, dtype=dtype,\n"
        "                                 shared=shared, seed=2)\n"
        "        (e, eg), (a, ag) = (forward_backward(inputs, i) for i in ('torch', 'cpp'))\n"
        "        for x, y in zip([a, *ag], [e, *eg]):\n"
        "            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)\n"
        "print('baseline ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MP3D_DISABLE_AVX2": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "baseline ok" in result.stdout


# ----------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_gradcheck_all_inputs(impl, shared, sparse):
    inputs = skinning_inputs(
        n_batch=3,
        n_vertices=7,
        n_joints=4,
        dtype=torch.float64,
        sparse=sparse,
        shared=shared,
        seed=6,
    )
    leaves = tuple(t.clone().requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(lambda x, w, a: lbs(x, w, a, impl=impl), leaves)


@pytest.mark.parametrize("impl", KERNEL_IMPLS)
@pytest.mark.parametrize("shared", [False, True])
def test_double_backward(impl, shared):
    """create_graph=True differentiates through the reference, so second order works too."""
    inputs = skinning_inputs(
        n_batch=2, n_vertices=3, n_joints=2, dtype=torch.float64, seed=7, shared=shared
    )
    leaves = tuple(t.clone().requires_grad_() for t in inputs)
    assert torch.autograd.gradgradcheck(lambda x, w, a: lbs(x, w, a, impl=impl), leaves)


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("shared", [False, True])
def test_identity_transforms_leave_vertices_unchanged(impl, shared):
    vertices, weights, _ = skinning_inputs(
        n_batch=9, n_vertices=64, n_joints=24, shared=shared, sparse=False, seed=8
    )
    identity = torch.eye(4).expand(9, 24, 4, 4)
    posed = lbs(vertices, weights, identity, impl=impl)
    torch.testing.assert_close(posed, vertices.expand(9, 64, 3), rtol=0, atol=1e-6)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_one_joint_is_a_rigid_motion(impl):
    """All weight on one joint: every vertex moves by that joint's R x + t."""
    g = torch.Generator().manual_seed(9)
    vertices = torch.randn(2, 30, 3, generator=g, dtype=torch.float64)
    weights = torch.zeros(30, 5, dtype=torch.float64)
    weights[:, 3] = 1.0
    transforms = torch.eye(4, dtype=torch.float64).repeat(2, 5, 1, 1)
    rotation = random_rotations((2,), g)
    translation = torch.randn(2, 3, generator=g, dtype=torch.float64)
    transforms[:, 3, :3, :3] = rotation
    transforms[:, 3, :3, 3] = translation
    posed = lbs(vertices, weights, transforms, impl=impl)
    expected = torch.einsum("bij,bvj->bvi", rotation, vertices) + translation[:, None]
    torch.testing.assert_close(posed, expected)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_translations_blend_linearly(impl):
    """Pure translations t_j move vertex v by sum_j w_vj t_j."""
    vertices, weights, _ = skinning_inputs(
        n_batch=3, n_vertices=40, n_joints=6, dtype=torch.float64, seed=10
    )
    shifts = torch.randn(3, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    transforms = torch.eye(4, dtype=torch.float64).repeat(3, 6, 1, 1)
    transforms[..., :3, 3] = shifts
    posed = lbs(vertices, weights, transforms, impl=impl)
    torch.testing.assert_close(posed, vertices + torch.einsum("vj,bjk->bvk", weights, shifts))


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_bottom_rows_of_transforms_are_ignored(impl):
    vertices, weights, transforms = skinning_inputs(
        n_batch=2, n_vertices=20, dtype=torch.float64, seed=11
    )
    other = transforms.clone()
    other[..., 3, :] = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(
        lbs(vertices, weights, transforms, impl=impl), lbs(vertices, weights, other, impl=impl)
    )
    transforms.requires_grad_()
    lbs(vertices, weights, transforms, impl=impl).sum().backward()
    assert transforms.grad[..., 3, :].abs().max() == 0


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_shared_vertices_equal_batched_copies(impl):
    """[V,3] vertices act as the same vertices in every batch element; their gradient is the
    sum of the per-element gradients."""
    shared, weights, transforms = skinning_inputs(
        n_batch=11, n_vertices=70, n_joints=8, dtype=torch.float64, shared=True, seed=12
    )
    batched = shared.expand(11, 70, 3).contiguous()
    posed_shared, grads_shared = forward_backward((shared, weights, transforms), impl)
    posed_batched, grads_batched = forward_backward((batched, weights, transforms), impl)
    torch.testing.assert_close(posed_shared, posed_batched)
    assert grads_shared[0].shape == (70, 3)
    torch.testing.assert_close(grads_shared[0], grads_batched[0].sum(dim=0))
    torch.testing.assert_close(grads_shared[1], grads_batched[1])
    torch.testing.assert_close(grads_shared[2], grads_batched[2])


# ----------------------------------------------------------------------------- empty input


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize(
    "n_batch,n_vertices,shared",
    [(0, 10, False), (0, 10, True), (4, 0, False), (4, 0, True), (0, 0, False)],
)
def test_empty_batch_or_vertices(impl, n_batch, n_vertices, shared):
    vertices, weights, transforms = skinning_inputs(
        n_batch=n_batch, n_vertices=n_vertices, n_joints=5, shared=shared, seed=13
    )
    leaves = [t.clone().requires_grad_() for t in (vertices, weights, transforms)]
    posed = lbs(*leaves, impl=impl)
    assert posed.shape == (n_batch, n_vertices, 3)
    posed.sum().backward()
    for leaf in leaves:
        assert leaf.grad.shape == leaf.shape
        assert leaf.grad.abs().sum() == 0


# ----------------------------------------------------------------------------- bad input


def _bad_cases():
    vertices, weights, transforms = skinning_inputs(n_batch=2, n_vertices=6, n_joints=4, seed=14)
    unnormalised = weights.clone()
    unnormalised[3] *= 1.1
    nan_vertices = vertices.clone()
    nan_vertices[1, 2, 0] = float("nan")
    inf_transforms = transforms.clone()
    inf_transforms[0, 1, 0, 3] = float("inf")
    nan_weights = weights.clone()
    nan_weights[0, 0] = float("nan")
    base = (vertices, weights, transforms)

    def case(**changes):
        named = dict(zip(("vertices", "weights", "transforms"), base))
        named.update(changes)
        return named["vertices"], named["weights"], named["transforms"]

    return {
        "vertices of another V": (
            case(vertices=vertices[:, :5]),
            r"vertices must have shape \[2, 6, 3\] or \[6, 3\].*got \[2, 5, 3\]",
        ),
        "vertices of another B": (
            case(vertices=vertices[:1]),
            r"vertices must have shape \[2, 6, 3\].*got \[1, 6, 3\]",
        ),
        "vertices with 4 coordinates": (
            case(vertices=torch.zeros(2, 6, 4)),
            r"vertices must have shape.*got \[2, 6, 4\]",
        ),
        "transforms of another J": (
            case(transforms=transforms[:, :3]),
            r"transforms must have shape \[\*, 4, 4, 4\], got \[2, 3, 4, 4\]",
        ),
        "3x4 transforms": (
            case(transforms=transforms[..., :3, :]),
            r"transforms must have shape \[\*, 4, 4, 4\], got \[2, 4, 3, 4\]",
        ),
        "1-D weights": (case(weights=weights[0]), r"weights must have shape \[\*, \*\], got \[4\]"),
        "weights rows not summing to 1": (
            case(weights=unnormalised),
            r"weights rows must sum to 1 .*got row 3 summing to 1\.1",
        ),
        "NaN vertex": (case(vertices=nan_vertices), "vertices must be finite, got 1 NaN"),
        "infinite transform": (case(transforms=inf_transforms), "transforms must be finite"),
        "NaN weight": (case(weights=nan_weights), "weights must be finite"),
        "float16 weights": (case(weights=weights.half()), "weights must have dtype"),
        "int transforms": (
            case(transforms=transforms.int()),
            "transforms must have the dtype of vertices",
        ),
        "mixed float dtypes": (
            case(vertices=vertices.double()),
            "weights must have the dtype of vertices",
        ),
        "other device": (
            case(transforms=transforms.to("meta")),
            "transforms must be on the same device as vertices",
        ),
        "list vertices": (case(vertices=vertices.tolist()), "vertices must be a torch.Tensor"),
    }


BAD_CASES = _bad_cases()


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("name", list(BAD_CASES))
def test_bad_input_raises_value_error(name, impl):
    inputs, message = BAD_CASES[name]
    with pytest.raises(ValueError, match=message):
        lbs(*inputs, impl=impl)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_weights_within_tolerance_are_accepted(impl):
    """Rows off by 5e-5 (< WEIGHT_SUM_TOLERANCE) skin as given; off by 2e-4, they raise."""
    vertices, weights, transforms = skinning_inputs(
        n_batch=2, n_vertices=6, seed=15, dtype=torch.float64
    )
    near = weights * (1 + 5e-5)
    posed = lbs(vertices, near, transforms, impl=impl)
    torch.testing.assert_close(posed, reference(vertices, near, transforms))
    with pytest.raises(ValueError, match="weights rows must sum to 1"):
        lbs(vertices, weights * (1 + 2e-4), transforms, impl=impl)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_validate_false_skips_value_checks_only(impl):
    """validate=False (or mp3d.set_checks(False)) skips the finite and weight-sum checks,
    never the shape, dtype and device checks."""
    from mp3d.ops._validation import checks

    vertices, weights, transforms = skinning_inputs(
        n_batch=2, n_vertices=6, seed=23, dtype=torch.float64
    )
    scaled = weights * 1.1
    posed = lbs(vertices, scaled, transforms, impl=impl, validate=False)
    torch.testing.assert_close(posed, reference(vertices, scaled, transforms))
    with checks(False):
        lbs(vertices, scaled, transforms, impl=impl)
        with pytest.raises(ValueError, match="weights rows must sum to 1"):
            lbs(vertices, scaled, transforms, impl=impl, validate=True)
    with pytest.raises(ValueError, match="vertices must have shape"):
        lbs(vertices[:, :5], weights, transforms, impl=impl, validate=False)
    with pytest.raises(ValueError, match="must have the dtype of vertices"):
        lbs(vertices, weights.float(), transforms, impl=impl, validate=False)


def test_bad_impl_raises():
    inputs = skinning_inputs(n_batch=1, n_vertices=3, seed=16)
    with pytest.raises(ValueError, match="impl must be one of"):
        lbs(*inputs, impl="fast")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="impl='cuda' is not available"):
            lbs(*inputs, impl="cuda")


@needs_cpp
def test_cpp_check_is_second_line_of_defence():
    """The C++ ops reject bad shapes themselves (ValueError) when called without the wrapper."""
    vertices, weights, transforms = skinning_inputs(n_batch=2, n_vertices=6, n_joints=4, seed=17)
    with pytest.raises(ValueError, match="vertices must have shape"):
        torch.ops.mp3d.lbs_fwd(vertices[:, :5].contiguous(), weights, transforms)
    with pytest.raises(ValueError, match="transforms must have shape"):
        torch.ops.mp3d.lbs_fwd(vertices, weights, transforms[:, :3].contiguous())
    with pytest.raises(ValueError, match="grad_posed must have shape"):
        torch.ops.mp3d.lbs_bwd(
            torch.zeros(2, 5, 3), vertices, weights, transforms, True, True, True
        )


# ----------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("n_batch", [1, 37])
def test_cuda_matches_reference(shared, n_batch):
    inputs = skinning_inputs(n_batch=n_batch, n_vertices=1000, n_joints=24, shared=shared, seed=18)
    expected, expected_grads = forward_backward(inputs, "torch")
    actual, actual_grads = forward_backward(tuple(t.cuda() for t in inputs), "cuda")
    torch.testing.assert_close(actual.cpu(), expected, rtol=1e-5, atol=1e-5)
    for name, a, e in zip(("vertices", "weights", "transforms"), actual_grads, expected_grads):
        torch.testing.assert_close(a.cpu(), e, rtol=1e-4, atol=1e-3, msg=name)


@pytest.mark.gpu
@pytest.mark.parametrize("shared", [False, True])
def test_cuda_gradcheck(shared):
    inputs = skinning_inputs(
        n_batch=3,
        n_vertices=7,
        n_joints=4,
        dtype=torch.float64,
        shared=shared,
        seed=19,
        device="cuda",
    )
    leaves = tuple(t.clone().requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(lambda x, w, a: lbs(x, w, a, impl="cuda"), leaves)


@pytest.mark.gpu
def test_cuda_many_joints():
    """More (joint, entry) pairs than one block's threads: 100 joints x 12 entries."""
    inputs = skinning_inputs(
        n_batch=3, n_vertices=200, n_joints=100, dtype=torch.float64, sparse=False, seed=20
    )
    _, expected = forward_backward(inputs, "torch")
    _, actual = forward_backward(tuple(t.cuda() for t in inputs), "cuda")
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a.cpu(), e)


@pytest.mark.gpu
def test_cuda_empty_and_identity():
    vertices, weights, _ = skinning_inputs(n_batch=0, n_vertices=10, device="cuda", seed=21)
    empty = torch.zeros(0, 6, 4, 4, device="cuda")
    assert lbs(vertices, weights, empty, impl="cuda").shape == (0, 10, 3)
    vertices, weights, _ = skinning_inputs(n_batch=4, n_vertices=10, device="cuda", seed=22)
    identity = torch.eye(4, device="cuda").expand(4, 6, 4, 4)
    torch.testing.assert_close(
        lbs(vertices, weights, identity, impl="cuda"), vertices, rtol=0, atol=1e-6
    )


# ----------------------------------------------------------------------------- kinematics

PARENTS = [int(p) for p in SMPL_PARENTS]
# A small tree with a branch at joint 1 and a chain: 0 <- 1 <- {2, 3}, 3 <- 4.
SMALL_TREE = [-1, 0, 1, 1, 3]


def kinematics_inputs(
    n_batch: int = 4, n_joints: int = 24, dtype=torch.float64, matrices: bool = False, seed: int = 0
):
    """(rotations [B,J,3] or [B,J,3,3], joints [B,J,3]); batch element 0 has some zero and
    some tiny rotations (the Taylor branches of Rodrigues)."""
    g = torch.Generator().manual_seed(seed)
    vectors = 0.8 * torch.randn(n_batch, n_joints, 3, generator=g, dtype=torch.float64)
    if n_batch:
        vectors[0, ::3] = 0.0
        vectors[0, 1::3] *= 1e-4
    joints = torch.randn(n_batch, n_joints, 3, generator=g, dtype=torch.float64)
    rotations = axis_angle_to_matrix(vectors) if matrices else vectors
    return rotations.to(dtype), joints.to(dtype)


@needs_cpp
@pytest.mark.parametrize("matrices", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n_batch", [1, 5, 37])  # 37: several parallel tasks
def test_kinematics_cpp_matches_reference(matrices, dtype, n_batch):
    rotations, joints = kinematics_inputs(n_batch, dtype=dtype, matrices=matrices, seed=n_batch)
    leaves = [t.clone().requires_grad_() for t in (rotations, joints)]
    expected = kinematics_reference(*leaves, PARENTS)
    upstream = [
        torch.randn(t.shape, dtype=dtype, generator=torch.Generator().manual_seed(i))
        for i, t in enumerate(expected)
    ]
    expected_grads = torch.autograd.grad(expected, leaves, upstream)
    actual = forward_kinematics(*leaves, PARENTS, impl="cpp")
    actual_grads = torch.autograd.grad(actual, leaves, upstream)
    tol = 2e-5 if dtype == torch.float32 else 1e-12
    for name, a, e in zip(("rot_mats", "world", "skin"), actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=tol, atol=tol, msg=name)
    for name, a, e in zip(("rotations", "joints"), actual_grads, expected_grads, strict=True):
        torch.testing.assert_close(a, e, rtol=tol, atol=10 * tol, msg=name)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
@pytest.mark.parametrize("matrices", [False, True])
def test_kinematics_gradcheck(impl, matrices):
    rotations, joints = kinematics_inputs(3, n_joints=5, matrices=matrices, seed=1)
    leaves = (rotations.requires_grad_(), joints.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda r, j: forward_kinematics(r, j, SMALL_TREE, impl=impl), leaves
    )


@needs_cpp
def test_kinematics_gradcheck_at_the_zero_rotation():
    """Rodrigues' vector-Jacobian product in C++ at v = 0 and across its series threshold."""
    vectors = torch.tensor(
        [
            [
                [0.0, 0.0, 0.0],
                [1e-6, -2e-6, 0.0],
                [5e-3, -4e-3, 6e-3],
                [1.2e-2, 0.0, 0.0],
                [0.3, -0.2, 0.1],
            ]
        ],
        dtype=torch.float64,
    )
    joints = torch.randn(1, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    leaves = (vectors.requires_grad_(), joints.requires_grad_())
    assert torch.autograd.gradcheck(
        lambda r, j: forward_kinematics(r, j, SMALL_TREE, impl="cpp"), leaves, eps=1e-7
    )


@pytest.mark.parametrize("impl", KERNEL_IMPLS)
@pytest.mark.parametrize("matrices", [False, True])
def test_kinematics_double_backward(impl, matrices):
    """create_graph=True differentiates the reference: second derivatives are right."""
    rotations, joints = kinematics_inputs(2, n_joints=4, matrices=matrices, seed=3)
    leaves = (rotations.requires_grad_(), joints.requires_grad_())
    assert torch.autograd.gradgradcheck(
        lambda r, j: forward_kinematics(r, j, SMALL_TREE[:4], impl=impl), leaves
    )


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_kinematics_closed_forms(impl):
    """Rest pose: world = translation to each joint, skin = identity. Any pose: world maps the
    origin to the posed joint, skin maps each rest joint there, bottom rows are [0, 0, 0, 1],
    and a chain of two joints turned about one axis composes the angles."""
    _, joints = kinematics_inputs(3, seed=4)
    rest_r, rest_w, rest_s = forward_kinematics(
        torch.zeros(3, 24, 3, dtype=torch.float64), joints, PARENTS, impl=impl
    )
    eye = torch.eye(4, dtype=torch.float64).expand(3, 24, 4, 4)
    torch.testing.assert_close(rest_s, eye, rtol=0, atol=1e-15)
    torch.testing.assert_close(rest_w[..., :3, 3], joints, rtol=0, atol=1e-14)
    torch.testing.assert_close(rest_r, eye[..., :3, :3], rtol=0, atol=0)
    rotations, joints = kinematics_inputs(3, seed=5)
    _, world, skin = forward_kinematics(rotations, joints, PARENTS, impl=impl)
    homogeneous = torch.cat([joints, torch.ones_like(joints[..., :1])], dim=-1)
    moved = (skin @ homogeneous.unsqueeze(-1)).squeeze(-1)[..., :3]
    torch.testing.assert_close(moved, world[..., :3, 3])
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    assert bool((world[..., 3, :] == bottom).all()) and bool((skin[..., 3, :] == bottom).all())
    # Joints 0 -> 1 -> 2 on a line along x, each turned 0.3 rad about z: joint 2 ends up at
    # joint 1 plus the bone turned by 0.6 rad.
    line = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0]]], dtype=torch.float64)
    turns = torch.tensor([[[0.0, 0, 0.3], [0.0, 0, 0.3], [0.0, 0, 0.0]]], dtype=torch.float64)
    _, world, _ = forward_kinematics(turns, line, [-1, 0, 1], impl=impl)
    j1 = torch.tensor([math.cos(0.3), math.sin(0.3), 0.0], dtype=torch.float64)
    j2 = j1 + 2.0 * torch.tensor([math.cos(0.6), math.sin(0.6), 0.0], dtype=torch.float64)
    torch.testing.assert_close(world[0, 1:, :3, 3], torch.stack([j1, j2]))


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_kinematics_empty_batch(impl):
    rotations = torch.zeros(0, 24, 3, requires_grad=True)
    outputs = forward_kinematics(rotations, torch.zeros(0, 24, 3), PARENTS, impl=impl)
    assert [tuple(t.shape) for t in outputs] == [(0, 24, 3, 3), (0, 24, 4, 4), (0, 24, 4, 4)]
    sum(t.sum() for t in outputs).backward()
    assert rotations.grad.shape == (0, 24, 3)


@pytest.mark.parametrize("impl", ["torch"] + KERNEL_IMPLS)
def test_kinematics_bad_input(impl):
    rotations, joints = kinematics_inputs(2, n_joints=5, seed=6)
    cases = [
        ((rotations[:, :4], joints, SMALL_TREE), r"rotations must have shape \[2, 5, 3\]"),
        ((rotations, joints[..., :2], SMALL_TREE), r"joints must have shape \[\*, \*, 3\]"),
        ((rotations.float(), joints, SMALL_TREE), "rotations must have the dtype of joints"),
        ((rotations, joints, SMALL_TREE[:4]), "parents must have 5 entries"),
        ((rotations, joints, [-1, 0, 3, 1, 3]), "parents must list each joint after its parent"),
        ((rotations, joints, [0, 0, 1, 1, 3]), "parents must list each joint after its parent"),
        ((rotations, joints, ["a"] * 5), "parents must be a list of ints"),
        ((rotations, joints, torch.zeros(5)), "parents must be a 1-D int64 tensor"),
    ]
    nan = rotations.clone()
    nan[1, 2, 0] = float("nan")
    cases.append(((nan, joints, SMALL_TREE), "rotations must be finite"))
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            forward_kinematics(*args, impl=impl)
    # validate=False skips the value checks (NaN passes through, unchecked).
    outputs = forward_kinematics(nan, joints, SMALL_TREE, impl=impl, validate=False)
    assert bool(torch.isnan(outputs[1][1]).any())


@needs_cpp
def test_kinematics_cpp_checks_parents_itself():
    """Parents index memory in C++: the kernel rejects bad ones even unvalidated."""
    rotations, joints = kinematics_inputs(2, n_joints=5, seed=7)
    for parents in ([-1, 0, 7, 1, 3], [-1, 0, 2, 1, 3], [1, 0, 1, 1, 3]):
        with pytest.raises(ValueError, match="parents must list each joint after its parent"):
            forward_kinematics(rotations, joints, parents, impl="cpp", validate=False)
    with pytest.raises(ValueError, match="grad_world must be a contiguous"):
        torch.ops.mp3d.kinematics_bwd(
            torch.zeros(2, 5, 3, 3, dtype=torch.float64),
            torch.zeros(2, 5, 3, 4, dtype=torch.float64),
            torch.zeros(2, 5, 4, 4, dtype=torch.float64),
            rotations,
            joints,
            torch.tensor(SMALL_TREE),
        )


def test_kinematics_on_an_extension_built_before_its_kernels(monkeypatch):
    """An mp3d._C without the kinematics ops: "auto" runs the reference, "cpp" says why."""
    from mp3d import _backend

    real = _backend.kernel_missing

    def without_kinematics(family, device_type):
        if family == "kinematics":
            return "mp3d._C has no CPU kernel for kinematics_fwd, kinematics_bwd"
        return real(family, device_type)

    monkeypatch.setattr(_backend, "kernel_missing", without_kinematics)
    rotations, joints = kinematics_inputs(2, n_joints=5, seed=8)
    expected = kinematics_reference(rotations, joints, SMALL_TREE)
    for actual, wanted in zip(
        forward_kinematics(rotations, joints, SMALL_TREE), expected, strict=True
    ):
        torch.testing.assert_close(actual, wanted)
    if "cpp" in available_impls():
        with pytest.raises(ValueError, match="mp3d._C has no CPU kernel for kinematics_fwd"):
            forward_kinematics(rotations, joints, SMALL_TREE, impl="cpp")
