// Linear blend skinning: the per-vertex math shared by the CPU and CUDA kernels.
//
// For batch b, vertex v with rest position x = x_bv (homogeneous xh = (x, 1)), weights
// w_vj and per-joint transforms A_bj (4x4, only the top 3 rows are used):
//   M_bv = sum_j w_vj A_bj[0:3, :]      (the blended 3x4 transform, never stored)
//   y_bv = M_bv xh
// The top three rows of a row-major 4x4 matrix are its first 12 numbers, so every per-joint
// quantity below is a contiguous run of 12 scalars (kRows3x4).
//
// Backward, with g = dL/dy_bv and the outer product P_bv = g xh^T (3x4, 12 numbers):
//   dL/dx_bv      = M_bv[:, 0:3]^T g
//   dL/dA_bj[0:3] = sum_v w_vj P_bv           (row 3 of A gets no gradient)
//   dL/dw_vj      = sum_b <A_bj[0:3], P_bv>   (Frobenius product)
// Joints with w_vj == 0 add nothing to y, dL/dx or dL/dA and are skipped (skinning weights
// are mostly zero); inputs are validated finite, so skipping them is exact.
#pragma once

#include <cstdint>

#include "../common.h"

namespace mp3d {
namespace skinning {

constexpr int kRows3x4 = 12;  // top three rows of a row-major 4x4 matrix

template <typename scalar_t>
struct Inputs {
  const scalar_t* vertices;    // [B,V,3], or [V,3] shared by the batch
  const scalar_t* weights;     // [V,J]
  const scalar_t* transforms;  // [B,J,4,4]
  int64_t vertex_batch_stride;  // V*3, or 0 for shared vertices
  int64_t n_batch, n_vertices, n_joints;

  MP3D_HOST_DEVICE const scalar_t* vertex(int64_t b, int64_t v) const {
    return vertices + b * vertex_batch_stride + 3 * v;
  }
  MP3D_HOST_DEVICE const scalar_t* weight_row(int64_t v) const { return weights + v * n_joints; }
  MP3D_HOST_DEVICE const scalar_t* transform(int64_t b, int64_t j) const {
    return transforms + (b * n_joints + j) * 16;
  }
};

template <typename scalar_t>
struct ForwardArgs {
  Inputs<scalar_t> in;
  scalar_t* posed;  // [B,V,3] out
};

template <typename scalar_t>
struct BackwardArgs {
  Inputs<scalar_t> in;
  const scalar_t* grad_posed;  // [B,V,3]
  // Outputs, nullptr when not asked for. grad_vertices has the shape of vertices.
  scalar_t* grad_vertices;    // [B,V,3] or [V,3]
  scalar_t* grad_weights;     // [V,J]
  scalar_t* grad_transforms;  // [B,J,4,4]
};

// The helpers below take T = scalar_t (CUDA: one thread per batch element and vertex) or a
// vector of scalars (CPU: one lane per batch element); they use only +, * and +=.

// acc[0:12] += w a[0:12] (acc and a never overlap).
template <typename T>
MP3D_HOST_DEVICE void add_scaled_3x4(T* __restrict__ acc, const T& w, const T* __restrict__ a) {
  for (int c = 0; c < kRows3x4; ++c) acc[c] += w * a[c];
}

// y = m (x, 1) for a 3x4 transform m.
template <typename T>
MP3D_HOST_DEVICE void apply_transform(const T* m, const T* x, T* y) {
  for (int i = 0; i < 3; ++i)
    y[i] = m[4 * i] * x[0] + m[4 * i + 1] * x[1] + m[4 * i + 2] * x[2] + m[4 * i + 3];
}

// p = g (x, 1)^T, laid out like the top three rows of a 4x4 matrix.
template <typename T>
MP3D_HOST_DEVICE void outer_grad(const T* g, const T* x, T* p) {
  for (int i = 0; i < 3; ++i) {
    p[4 * i] = g[i] * x[0];
    p[4 * i + 1] = g[i] * x[1];
    p[4 * i + 2] = g[i] * x[2];
    p[4 * i + 3] = g[i];
  }
}

// dL/dx = m[:, 0:3]^T g.
template <typename T>
MP3D_HOST_DEVICE void vertex_grad(const T* m, const T* g, T* grad_x) {
  for (int k = 0; k < 3; ++k) grad_x[k] = m[k] * g[0] + m[4 + k] * g[1] + m[8 + k] * g[2];
}

// s = <a, p> over the 12 entries of two 3x4 matrices: one vertex's share of dL/dw_vj.
// (An out-parameter: returning a 32-byte vector by value would change the CPU ABI.)
template <typename T>
MP3D_HOST_DEVICE void frobenius_3x4(const T* a, const T* p, T& s) {
  s = a[0] * p[0];
  for (int c = 1; c < kRows3x4; ++c) s += a[c] * p[c];
}

// m = sum_j w_vj A_bj[0:3, :], the blended 3x4 transform of one vertex (zero weights skipped).
template <typename scalar_t>
MP3D_HOST_DEVICE void blend_transform(const Inputs<scalar_t>& in, int64_t b, int64_t v,
                                      scalar_t m[kRows3x4]) {
  for (int c = 0; c < kRows3x4; ++c) m[c] = 0;
  const scalar_t* w = in.weight_row(v);
  const scalar_t* a = in.transform(b, 0);
  for (int64_t j = 0; j < in.n_joints; ++j, a += 16) {
    const scalar_t wj = w[j];
    if (wj != scalar_t(0)) add_scaled_3x4(m, wj, a);
  }
}

template <typename scalar_t>
MP3D_HOST_DEVICE void skin_vertex(const ForwardArgs<scalar_t>& a, int64_t b, int64_t v) {
  scalar_t m[kRows3x4];
  blend_transform(a.in, b, v, m);
  apply_transform(m, a.in.vertex(b, v), a.posed + 3 * (b * a.in.n_vertices + v));
}

}  // namespace skinning
}  // namespace mp3d
