"""mp3d.transforms: rotation conversions and projection against closed forms, known values,
round trips, float64 gradcheck (including the zero rotation), batching and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from mp3d.transforms import (
    SMALL_ANGLE,
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    axis_rotation,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    project_points,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    skew,
    standardize_quaternion,
)

F64 = torch.float64


def random_axis_angles(n: int, seed: int, max_angle: float = math.pi - 1e-3) -> torch.Tensor:
    """Axis-angle vectors [n,3] with uniform axes and angles in (0, max_angle)."""
    g = torch.Generator().manual_seed(seed)
    axes = torch.nn.functional.normalize(torch.randn(n, 3, generator=g, dtype=F64), dim=-1)
    return axes * (max_angle * torch.rand(n, 1, generator=g, dtype=F64))


def random_rotations(n: int, seed: int) -> torch.Tensor:
    """Uniformly random rotation matrices [n,3,3] (QR of Gaussian matrices, det +1)."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=F64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    return q * torch.linalg.det(q)[:, None, None]  # flip reflections into rotations


def assert_rotations(matrices: torch.Tensor, tol: float = 1e-12) -> None:
    eye = torch.eye(3, dtype=matrices.dtype).expand_as(matrices)
    torch.testing.assert_close(matrices @ matrices.transpose(-1, -2), eye, rtol=0, atol=tol)
    torch.testing.assert_close(
        torch.linalg.det(matrices),
        torch.ones(matrices.shape[:-2], dtype=matrices.dtype),
        rtol=0,
        atol=tol,
    )


# ----------------------------------------------------------------------------- known values


def test_quarter_turn_about_z():
    expected = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], dtype=F64)
    vector = torch.tensor([0.0, 0.0, math.pi / 2], dtype=F64)
    quat = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)], dtype=F64)
    torch.testing.assert_close(axis_angle_to_matrix(vector), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(quaternion_to_matrix(quat), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(
        axis_rotation("z", math.pi / 2, dtype=F64), expected, rtol=0, atol=1e-15
    )
    torch.testing.assert_close(matrix_to_quaternion(expected), quat, rtol=0, atol=1e-15)
    torch.testing.assert_close(matrix_to_axis_angle(expected), vector, rtol=0, atol=1e-15)
    torch.testing.assert_close(axis_angle_to_quaternion(vector), quat, rtol=0, atol=1e-15)
    # x' = R x: the x axis goes to the y axis (right-hand rule about z).
    torch.testing.assert_close(
        expected @ torch.tensor([1.0, 0, 0], dtype=F64), torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    )


@pytest.mark.parametrize("axis,index", [("x", 0), ("y", 1), ("z", 2)])
def test_axis_rotation_equals_axis_angle(axis, index):
    angles = torch.linspace(-3.0, 3.0, 7, dtype=F64)
    vectors = torch.zeros(7, 3, dtype=F64)
    vectors[:, index] = angles
    torch.testing.assert_close(axis_rotation(axis, angles), axis_angle_to_matrix(vectors))


def test_half_turns():
    """Angle pi: the trace formula fails here; the conversions must not."""
    for index in range(3):
        vector = torch.zeros(3, dtype=F64)
        vector[index] = math.pi
        matrix = axis_angle_to_matrix(vector)
        expected = -torch.eye(3, dtype=F64)
        expected[index, index] = 1.0
        torch.testing.assert_close(matrix, expected, rtol=0, atol=1e-15)
        recovered = matrix_to_axis_angle(matrix)
        assert abs(float(recovered.norm()) - math.pi) < 1e-12
        torch.testing.assert_close(axis_angle_to_matrix(recovered), expected, rtol=0, atol=1e-12)
    diagonal = torch.tensor([1.0, 1.0, 0.0], dtype=F64) / math.sqrt(2) * math.pi
    recovered = matrix_to_axis_angle(axis_angle_to_matrix(diagonal))
    torch.testing.assert_close(
        axis_angle_to_matrix(recovered), axis_angle_to_matrix(diagonal), rtol=0, atol=1e-12
    )


def test_zero_rotation_everywhere():
    zero = torch.zeros(2, 3, dtype=F64)
    eye = torch.eye(3, dtype=F64).expand(2, 3, 3)
    torch.testing.assert_close(axis_angle_to_matrix(zero), eye, rtol=0, atol=0)
    torch.testing.assert_close(matrix_to_axis_angle(eye), zero, rtol=0, atol=0)
    torch.testing.assert_close(
        axis_angle_to_quaternion(zero),
        torch.tensor([[1.0, 0, 0, 0]] * 2, dtype=F64),
        rtol=0,
        atol=0,
    )
    torch.testing.assert_close(
        quaternion_to_axis_angle(torch.tensor([2.0, 0, 0, 0])), torch.zeros(3), rtol=0, atol=0
    )


def test_skew_is_the_cross_product():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, 5, 3, generator=g, dtype=F64)
    torch.testing.assert_close((skew(a) @ b[..., None])[..., 0], torch.linalg.cross(a, b))


# ----------------------------------------------------------------------------- closed forms


def test_rodrigues_equals_matrix_exponential():
    """R(v) = exp(skew(v)) for every angle, small ones included (the series branch)."""
    vectors = torch.cat(
        [
            random_axis_angles(50, 2, max_angle=6.0),
            random_axis_angles(20, 3, max_angle=2 * SMALL_ANGLE),
        ]
    )
    torch.testing.assert_close(
        axis_angle_to_matrix(vectors), torch.linalg.matrix_exp(skew(vectors)), rtol=0, atol=1e-13
    )


def test_quaternion_matrix_equals_axis_angle_matrix():
    vectors = random_axis_angles(60, 4, max_angle=6.0)
    torch.testing.assert_close(
        quaternion_to_matrix(axis_angle_to_quaternion(vectors)),
        axis_angle_to_matrix(vectors),
        rtol=0,
        atol=1e-13,
    )


def test_quaternion_rotates_like_the_hamilton_product():
    """R(q) x equals the vector part of q (0, x) q* (Hamilton product, w first)."""
    g = torch.Generator().manual_seed(5)
    q = torch.nn.functional.normalize(torch.randn(10, 4, generator=g, dtype=F64), dim=-1)
    x = torch.randn(10, 3, generator=g, dtype=F64)

    def product(a, b):
        aw, av = a[..., :1], a[..., 1:]
        bw, bv = b[..., :1], b[..., 1:]
        return torch.cat(
            [
                aw * bw - (av * bv).sum(-1, keepdim=True),
                aw * bv + bw * av + torch.linalg.cross(av, bv),
            ],
            dim=-1,
        )

    conjugate = q * torch.tensor([1.0, -1.0, -1.0, -1.0], dtype=F64)
    rotated = product(product(q, torch.cat([torch.zeros(10, 1, dtype=F64), x], -1)), conjugate)
    torch.testing.assert_close((quaternion_to_matrix(q) @ x[..., None])[..., 0], rotated[:, 1:])


def test_outputs_are_rotations():
    assert_rotations(axis_angle_to_matrix(random_axis_angles(40, 6, max_angle=10.0)))
    g = torch.Generator().manual_seed(7)
    assert_rotations(quaternion_to_matrix(3.0 * torch.randn(40, 4, generator=g, dtype=F64)))


# ----------------------------------------------------------------------------- round trips


def test_axis_angle_round_trip():
    vectors = torch.cat(
        [random_axis_angles(100, 8), random_axis_angles(20, 9, max_angle=2 * SMALL_ANGLE)]
    )
    torch.testing.assert_close(
        matrix_to_axis_angle(axis_angle_to_matrix(vectors)), vectors, rtol=0, atol=1e-10
    )
    torch.testing.assert_close(
        quaternion_to_axis_angle(axis_angle_to_quaternion(vectors)), vectors, rtol=0, atol=1e-12
    )


def test_matrix_round_trips():
    matrices = random_rotations(200, 10)
    torch.testing.assert_close(
        axis_angle_to_matrix(matrix_to_axis_angle(matrices)), matrices, rtol=0, atol=1e-12
    )
    quats = matrix_to_quaternion(matrices)
    assert bool((quats[:, 0] >= 0).all())
    torch.testing.assert_close(quats.norm(dim=-1), torch.ones(200, dtype=F64))
    torch.testing.assert_close(quaternion_to_matrix(quats), matrices, rtol=0, atol=1e-12)


def test_quaternion_round_trip_up_to_sign():
    g = torch.Generator().manual_seed(11)
    quats = torch.randn(100, 4, generator=g, dtype=F64)
    expected = standardize_quaternion(quats)
    torch.testing.assert_close(
        matrix_to_quaternion(quaternion_to_matrix(quats)), expected, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(
        matrix_to_quaternion(quaternion_to_matrix(-quats)), expected, rtol=0, atol=1e-12
    )
    torch.testing.assert_close(standardize_quaternion(-quats), expected)


# ----------------------------------------------------------------------------- gradients


def test_gradcheck_conversions():
    vectors = random_axis_angles(6, 12, max_angle=3.0).requires_grad_()
    quats = torch.randn(
        6, 4, generator=torch.Generator().manual_seed(13), dtype=F64
    ).requires_grad_()
    matrices = random_rotations(6, 14).requires_grad_()
    for fn, x in (
        (axis_angle_to_matrix, vectors),
        (axis_angle_to_quaternion, vectors),
        (quaternion_to_matrix, quats),
        (quaternion_to_axis_angle, quats),
        (matrix_to_quaternion, matrices),
        (matrix_to_axis_angle, matrices),
        (skew, vectors),
    ):
        assert torch.autograd.gradcheck(fn, (x,)), fn.__name__


def test_gradcheck_near_and_at_zero():
    """The Taylor branches: gradients finite and right within and across SMALL_ANGLE."""
    small = torch.tensor(
        [[0.0, 0.0, 0.0], [1e-5, -2e-5, 3e-6], [4e-4, 5e-4, -6e-4]], dtype=F64, requires_grad=True
    )
    assert torch.autograd.gradcheck(axis_angle_to_matrix, (small,), eps=1e-7)
    assert torch.autograd.gradcheck(axis_angle_to_quaternion, (small,), eps=1e-7)
    assert torch.autograd.gradgradcheck(axis_angle_to_matrix, (small,), eps=1e-7)
    near_identity = torch.tensor(
        [[1.0, 1e-5, -2e-5, 3e-5], [0.9, 1e-4, 2e-4, 3e-4]], dtype=F64, requires_grad=True
    )
    assert torch.autograd.gradcheck(quaternion_to_axis_angle, (near_identity,), eps=1e-8)


def test_gradient_at_the_zero_rotation_is_the_generator():
    """dR/dv_i at v = 0 is skew(e_i), exactly."""
    zero = torch.zeros(3, dtype=F64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(axis_angle_to_matrix, zero)  # [3,3,3]
    torch.testing.assert_close(
        jacobian.permute(2, 0, 1), skew(torch.eye(3, dtype=F64)), rtol=0, atol=0
    )


def test_float32_and_batch_shapes():
    vectors = random_axis_angles(24, 15).to(torch.float32).view(2, 3, 4, 3)
    matrices = axis_angle_to_matrix(vectors)
    assert matrices.shape == (2, 3, 4, 3, 3) and matrices.dtype == torch.float32
    assert matrix_to_quaternion(matrices).shape == (2, 3, 4, 4)
    torch.testing.assert_close(matrix_to_axis_angle(matrices), vectors, rtol=0, atol=1e-4)
    assert axis_angle_to_matrix(torch.zeros(0, 3)).shape == (0, 3, 3)
    assert matrix_to_axis_angle(torch.zeros(0, 3, 3)).shape == (0, 3)


# ----------------------------------------------------------------------------- projection


def test_project_points_closed_form():
    K = torch.tensor([[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]], dtype=F64)
    points = torch.tensor([[0.0, 0.0, 2.0], [1.0, -0.5, 4.0]], dtype=F64)
    pixels, depth = project_points(points, K)
    torch.testing.assert_close(pixels, torch.tensor([[320.0, 240.0], [445.0, 190.0]], dtype=F64))
    torch.testing.assert_close(depth, points[:, 2])


def test_project_points_with_viewmat_and_batches():
    g = torch.Generator().manual_seed(16)
    rotation = random_rotations(3, 17)
    viewmat = torch.eye(4, dtype=F64).repeat(3, 1, 1)
    viewmat[:, :3, :3] = rotation
    viewmat[:, :3, 3] = torch.tensor([0.1, -0.2, 5.0], dtype=F64)
    K = torch.tensor([[600.0, 0.5, 300.0], [0.0, 610.0, 200.0], [0.0, 0.0, 1.0]], dtype=F64)
    world = torch.randn(3, 8, 3, generator=g, dtype=F64)
    pixels, depth = project_points(world, K.expand(3, 3, 3), viewmat)
    camera = torch.einsum("bij,bnj->bni", rotation, world) + viewmat[:, None, :3, 3]
    expected = torch.einsum("ij,bnj->bni", K, camera)
    torch.testing.assert_close(pixels, expected[..., :2] / expected[..., 2:])
    torch.testing.assert_close(depth, camera[..., 2])
    # One K for every batch element broadcasts.
    torch.testing.assert_close(project_points(world, K, viewmat)[0], pixels)
    points = torch.randn(2, 5, 3, dtype=F64, requires_grad=True)
    shifted = points.detach() + torch.tensor([0.0, 0.0, 4.0], dtype=F64)
    assert torch.autograd.gradcheck(lambda p: project_points(p, K)[0], (shifted.requires_grad_(),))


def test_project_points_min_depth():
    K = torch.eye(3, dtype=F64)
    points = torch.tensor([[1.0, 2.0, 0.0], [1.0, 2.0, -1.0], [1.0, 2.0, 0.5]], dtype=F64)
    pixels, depth = project_points(points, K, min_depth=0.25)
    torch.testing.assert_close(
        pixels, torch.tensor([[4.0, 8.0], [4.0, 8.0], [2.0, 4.0]], dtype=F64)
    )
    torch.testing.assert_close(depth, points[:, 2])  # the returned depth is not clamped
    assert not bool(torch.isfinite(project_points(points, K)[0][0]).all())


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "fn,bad,message",
    [
        (
            axis_angle_to_matrix,
            torch.zeros(4, 4),
            r"rot_vecs must have shape \[\.\.\., 3\], got \[4, 4\]",
        ),
        (
            axis_angle_to_quaternion,
            torch.zeros(3, dtype=torch.int64),
            "rot_vecs must be a floating",
        ),
        (quaternion_to_matrix, torch.zeros(2, 3), r"quats must have shape \[\.\.\., 4\]"),
        (quaternion_to_axis_angle, [1.0, 0.0, 0.0, 0.0], "quats must be a torch.Tensor, got list"),
        (matrix_to_quaternion, torch.zeros(3, 4), r"matrices must have shape \[\.\.\., 3, 3\]"),
        (matrix_to_axis_angle, torch.zeros(3), r"matrices must have shape \[\.\.\., 3, 3\]"),
        (skew, torch.zeros(2), r"vectors must have shape \[\.\.\., 3\]"),
    ],
)
def test_bad_input_raises(fn, bad, message):
    with pytest.raises(ValueError, match=message):
        fn(bad)


def test_bad_projection_and_axis_input():
    with pytest.raises(ValueError, match=r"K must have shape \[\.\.\., 3, 3\]"):
        project_points(torch.zeros(4, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"viewmat must have shape \[\.\.\., 4, 4\]"):
        project_points(torch.zeros(4, 3), torch.eye(3), torch.eye(3))
    with pytest.raises(ValueError, match=r"points must have shape \[\.\.\., 3\]"):
        project_points(torch.zeros(4, 2), torch.eye(3))
    with pytest.raises(ValueError, match="axis must be 'x', 'y' or 'z', got 'w'"):
        axis_rotation("w", 0.1)
    with pytest.raises(ValueError, match="angle must be a finite number"):
        axis_rotation("x", float("nan"))
