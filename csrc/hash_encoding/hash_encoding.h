// Multiresolution hash encoding: the per-point, per-level math shared by the CPU and CUDA
// kernels. The contract (table layout, dense vs hashed rows) is in mp3d/ops/hash_encoding.py.
//
// At a level of resolution r, a point p (clamped to [0,1]^3) lies in the cell with lowest
// corner c = min(floor(p r), r - 1) at fraction t = p r - c in [0,1]^3. Corner k (bit 0 = x,
// bit 1 = y, bit 2 = z) has weight w_k = prod_a (bit_a(k) ? t_a : 1 - t_a) and the level's
// feature is sum_k w_k e[row_k].
//
// Backward, with g = dL/dfeature at this level:
//   dL/de[row_k] += w_k g,
//   dL/dp_a      += r sum_k (g . e[row_k]) dw_k/dt_a,
// where dw_k/dt_a is w_k with axis a's factor replaced by +1 (bit set) or -1 (bit clear);
// dL/dp_a = 0 where p_a lay outside [0,1] (the clamp), as torch's clamp gives. The cell is
// piecewise constant in p, so it contributes no gradient.
//
// Double backward: the backward above is a function (g, p, e) -> (de, dp) of its own. Given
// the incoming gradients of its outputs, a = dL'/d(de) [E,F] and b = dL'/d(dp) [N,3], write
// m_a = 1 where p_a passes the clamp (else 0), q_a = r m_a b_a (b masked and scaled as dp is,
// since dp_a carries m_a r), D_k = sum_a q_a dw_k/dt_a (corner k's weight along q), and
// s_a(k) = +1 (bit set) or -1 (bit clear). Then L' = sum_k a[row_k] . (w_k g)
// + sum_k (g . e[row_k]) D_k, which is linear in g and in e, so
//   dL'/dg        = sum_k (w_k a[row_k] + D_k e[row_k]),
//   dL'/de[row_k] += D_k g,
//   dL'/dp_c      = m_c r sum_k [(g . a[row_k]) dw_k/dt_c + (g . e[row_k]) dD_k/dt_c],
// with dD_k/dt_c = sum_{a != c} q_a d2w_k/dt_a dt_c: w_k is linear in each t_a, so the
// trilinear Hessian has a zero diagonal and d2w_k/dt_a dt_c = s_a s_c w_third (the factor of
// the axis that is neither a nor c). The masks m and the cell are piecewise constant in p
// (torch differentiates its clamp's mask as a constant too), so these are exactly the second
// derivatives autograd takes of the torch reference. Note that b enters dL'/dg and dL'/de
// masked as well, so a clamped axis contributes nothing anywhere. a or b may be absent
// (zero): their terms are skipped.
#pragma once

#include <cstdint>

#include "../common.h"

namespace mp3d {
namespace hash_encoding {

constexpr uint64_t kPrimeY = 2654435761ULL;
constexpr uint64_t kPrimeZ = 805459861ULL;

// One level's table: rows [begin, begin + size) of the embeddings, and its grid resolution.
struct Level {
  int64_t begin;
  int64_t size;
  int64_t resolution;
  bool dense;  // (resolution + 1)^3 <= size: vertices get their own rows, no hashing
};

// Whether side^3 <= size, without overflowing int64 for large sides.
inline bool fits_densely(int64_t side, int64_t size) {
  return side <= size / side && side * side <= size / side;
}

// Table row of the grid vertex (x, y, z), exactly as the reference computes it.
MP3D_HOST_DEVICE int64_t vertex_row(const Level& level, int64_t x, int64_t y, int64_t z) {
  if (level.dense) {
    const int64_t side = level.resolution + 1;
    return level.begin + x + side * (y + side * z);
  }
  // Unsigned products wrap exactly like the reference's int64 ones; the remainder then takes
  // the divisor's sign like torch's %, so the row is always inside the level.
  const uint64_t hashed = static_cast<uint64_t>(x) ^ (static_cast<uint64_t>(y) * kPrimeY) ^
                          (static_cast<uint64_t>(z) * kPrimeZ);
  int64_t row = static_cast<int64_t>(hashed) % level.size;
  if (row < 0) row += level.size;
  return level.begin + row;
}

// Clamp to [0,1]; NaN compares false and lands on 0, so a bad point never leaves the grid.
template <typename scalar_t>
MP3D_HOST_DEVICE scalar_t clamp_unit(scalar_t v) {
  return v > scalar_t(0) ? (v < scalar_t(1) ? v : scalar_t(1)) : scalar_t(0);
}

// Whether torch's clamp(0, 1) passes the gradient of v through (bounds included).
template <typename scalar_t>
MP3D_HOST_DEVICE bool passes_clamp(scalar_t v) {
  return v >= scalar_t(0) && v <= scalar_t(1);
}

// A point's cell at one level: its 8 corner rows and the point's fraction inside it.
template <typename scalar_t>
struct Cell {
  int64_t rows[8];
  scalar_t frac[3];
};

template <typename scalar_t>
MP3D_HOST_DEVICE Cell<scalar_t> locate(const scalar_t* point, const Level& level) {
  Cell<scalar_t> cell;
  int64_t origin[3];
  for (int a = 0; a < 3; ++a) {
    const scalar_t scaled = clamp_unit(point[a]) * static_cast<scalar_t>(level.resolution);
    // scaled >= 0, so truncation is floor.
    int64_t c = static_cast<int64_t>(scaled);
    if (c > level.resolution - 1) c = level.resolution - 1;
    origin[a] = c;
    cell.frac[a] = scaled - static_cast<scalar_t>(c);
  }
  for (int k = 0; k < 8; ++k)
    cell.rows[k] = vertex_row(level, origin[0] + (k & 1), origin[1] + ((k >> 1) & 1),
                              origin[2] + ((k >> 2) & 1));
  return cell;
}

// Corner k's interpolation factor along one axis.
template <typename scalar_t>
MP3D_HOST_DEVICE scalar_t axis_weight(const Cell<scalar_t>& cell, int k, int axis) {
  return ((k >> axis) & 1) ? cell.frac[axis] : scalar_t(1) - cell.frac[axis];
}

template <typename scalar_t>
MP3D_HOST_DEVICE scalar_t corner_weight(const Cell<scalar_t>& cell, int k) {
  return axis_weight(cell, k, 0) * axis_weight(cell, k, 1) * axis_weight(cell, k, 2);
}

template <typename scalar_t>
struct ForwardArgs {
  const scalar_t* points;      // [N,3]
  const scalar_t* embeddings;  // [E,F]
  int64_t n_features;          // F
  int64_t n_levels;            // L
  scalar_t* features;          // [N, L*F] out
};

// Writes point n's F features at level l.
template <typename scalar_t>
MP3D_HOST_DEVICE void encode(const ForwardArgs<scalar_t>& a, const Level& level, int64_t l,
                             int64_t n) {
  const Cell<scalar_t> cell = locate(a.points + 3 * n, level);
  scalar_t weights[8];
  for (int k = 0; k < 8; ++k) weights[k] = corner_weight(cell, k);
  scalar_t* out = a.features + (n * a.n_levels + l) * a.n_features;
  for (int64_t f = 0; f < a.n_features; ++f) {
    scalar_t sum = 0;
    for (int k = 0; k < 8; ++k) sum += weights[k] * a.embeddings[cell.rows[k] * a.n_features + f];
    out[f] = sum;
  }
}

template <typename scalar_t>
struct BackwardArgs {
  const scalar_t* grad_features;  // [N, L*F]
  const scalar_t* points;         // [N,3]
  const scalar_t* embeddings;     // [E,F]
  int64_t n_features;             // F
  int64_t n_levels;               // L
  scalar_t* grad_embeddings;      // [E,F] out, zero-initialised, accumulated into
  scalar_t* grad_points;          // [N,3] out, likewise; nullptr when not asked for
};

// Adds v to *target: atomically on the device; on the host the caller must own *target.
template <typename scalar_t>
MP3D_HOST_DEVICE void add_to(scalar_t* target, scalar_t v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(target, v);
#else
  *target += v;
#endif
}

// Adds point n's level-l contribution to the gradient of the embeddings.
template <typename scalar_t>
MP3D_HOST_DEVICE void scatter_embedding_grad(const BackwardArgs<scalar_t>& a, const Level& level,
                                             int64_t l, int64_t n) {
  const Cell<scalar_t> cell = locate(a.points + 3 * n, level);
  const scalar_t* g = a.grad_features + (n * a.n_levels + l) * a.n_features;
  for (int k = 0; k < 8; ++k) {
    const scalar_t w = corner_weight(cell, k);
    scalar_t* row = a.grad_embeddings + cell.rows[k] * a.n_features;
    for (int64_t f = 0; f < a.n_features; ++f) add_to(row + f, w * g[f]);
  }
}

// Adds point n's level-l contribution to dL/dp into grad[3].
template <typename scalar_t>
MP3D_HOST_DEVICE void add_level_point_grad(const BackwardArgs<scalar_t>& a, const Level& level,
                                           int64_t l, int64_t n, scalar_t grad[3]) {
  const scalar_t* point = a.points + 3 * n;
  const Cell<scalar_t> cell = locate(point, level);
  const scalar_t* g = a.grad_features + (n * a.n_levels + l) * a.n_features;
  scalar_t d_frac[3] = {0, 0, 0};
  for (int k = 0; k < 8; ++k) {
    const scalar_t* row = a.embeddings + cell.rows[k] * a.n_features;
    scalar_t dot = 0;
    for (int64_t f = 0; f < a.n_features; ++f) dot += g[f] * row[f];
    const scalar_t w[3] = {axis_weight(cell, k, 0), axis_weight(cell, k, 1),
                           axis_weight(cell, k, 2)};
    for (int axis = 0; axis < 3; ++axis) {
      const scalar_t others = w[(axis + 1) % 3] * w[(axis + 2) % 3];
      d_frac[axis] += ((k >> axis) & 1) ? dot * others : -dot * others;
    }
  }
  const scalar_t resolution = static_cast<scalar_t>(level.resolution);
  for (int axis = 0; axis < 3; ++axis)
    if (passes_clamp(point[axis])) grad[axis] += resolution * d_frac[axis];
}

template <typename scalar_t>
struct DoubleBackwardArgs {
  const scalar_t* grad_features;   // g [N, L*F]
  const scalar_t* points;          // [N,3]
  const scalar_t* embeddings;      // [E,F]
  const scalar_t* gg_embeddings;   // a [E,F], nullptr when absent (zero)
  const scalar_t* gg_points;       // b [N,3], nullptr when absent (zero)
  int64_t n_features;              // F
  int64_t n_levels;                // L
  scalar_t* grad_grad_features;    // [N, L*F] out, each (point, level) written by one caller;
                                   // nullptr when not asked for
  scalar_t* grad_points;           // [N,3] out, zero-initialised, accumulated; nullptr likewise
  scalar_t* grad_embeddings;       // [E,F] out, zero-initialised, accumulated; nullptr likewise
};

// Corner k's sign along an axis: the sign of dw_k/dt_axis.
template <typename scalar_t>
MP3D_HOST_DEVICE scalar_t corner_sign(int k, int axis) {
  return ((k >> axis) & 1) ? scalar_t(1) : scalar_t(-1);
}

// q = r m b of point n at one level (see the header comment); false when b is absent or
// masked to zero on every axis.
template <typename scalar_t>
MP3D_HOST_DEVICE bool masked_point_grad(const DoubleBackwardArgs<scalar_t>& a, const Level& level,
                                        int64_t n, scalar_t q[3]) {
  q[0] = q[1] = q[2] = scalar_t(0);
  if (a.gg_points == nullptr) return false;
  const scalar_t* point = a.points + 3 * n;
  const scalar_t resolution = static_cast<scalar_t>(level.resolution);
  bool any = false;
  for (int axis = 0; axis < 3; ++axis) {
    if (!passes_clamp(point[axis])) continue;
    q[axis] = resolution * a.gg_points[3 * n + axis];
    any = any || q[axis] != scalar_t(0);
  }
  return any;
}

// D_k = sum_a q_a dw_k/dt_a for one corner, from its three axis factors w.
template <typename scalar_t>
MP3D_HOST_DEVICE scalar_t directional_weight(int k, const scalar_t w[3], const scalar_t q[3]) {
  scalar_t d = 0;
  for (int axis = 0; axis < 3; ++axis)
    d += corner_sign<scalar_t>(k, axis) * q[axis] * w[(axis + 1) % 3] * w[(axis + 2) % 3];
  return d;
}

// Point n's level-l share of the double backward: writes dL'/dg for (n, l) when
// grad_grad_features is asked for, and adds dL'/dp to grad[3] when grad is not nullptr.
template <typename scalar_t>
MP3D_HOST_DEVICE void double_backward_point(const DoubleBackwardArgs<scalar_t>& a,
                                            const Level& level, int64_t l, int64_t n,
                                            scalar_t* grad) {
  const scalar_t* point = a.points + 3 * n;
  const Cell<scalar_t> cell = locate(point, level);
  scalar_t q[3];
  const bool has_q = masked_point_grad(a, level, n, q);
  const bool has_gg_e = a.gg_embeddings != nullptr;
  const int64_t column = (n * a.n_levels + l) * a.n_features;
  const scalar_t* g = a.grad_features + column;
  scalar_t* out = a.grad_grad_features != nullptr ? a.grad_grad_features + column : nullptr;
  if (out != nullptr)
    for (int64_t f = 0; f < a.n_features; ++f) out[f] = scalar_t(0);
  scalar_t d_frac[3] = {0, 0, 0};
  for (int k = 0; k < 8; ++k) {
    const scalar_t w[3] = {axis_weight(cell, k, 0), axis_weight(cell, k, 1),
                           axis_weight(cell, k, 2)};
    const scalar_t weight = w[0] * w[1] * w[2];
    const scalar_t d_k = has_q ? directional_weight(k, w, q) : scalar_t(0);
    const scalar_t* e = a.embeddings + cell.rows[k] * a.n_features;
    const scalar_t* gg_e = has_gg_e ? a.gg_embeddings + cell.rows[k] * a.n_features : nullptr;
    scalar_t g_dot_e = 0, g_dot_gg_e = 0;
    for (int64_t f = 0; f < a.n_features; ++f) {
      if (out != nullptr) {
        scalar_t v = has_q ? d_k * e[f] : scalar_t(0);
        if (has_gg_e) v += weight * gg_e[f];
        out[f] += v;
      }
      if (grad != nullptr) {
        if (has_q) g_dot_e += g[f] * e[f];
        if (has_gg_e) g_dot_gg_e += g[f] * gg_e[f];
      }
    }
    if (grad == nullptr) continue;
    for (int c = 0; c < 3; ++c) {
      const int a1 = (c + 1) % 3, a2 = (c + 2) % 3;
      const scalar_t s_c = corner_sign<scalar_t>(k, c);
      scalar_t v = 0;
      if (has_gg_e) v += g_dot_gg_e * s_c * w[a1] * w[a2];
      // dD_k/dt_c: the Hessian's off-diagonal entries s_a s_c w_third, a in {a1, a2}.
      if (has_q)
        v += g_dot_e * s_c *
             (corner_sign<scalar_t>(k, a1) * q[a1] * w[a2] +
              corner_sign<scalar_t>(k, a2) * q[a2] * w[a1]);
      d_frac[c] += v;
    }
  }
  if (grad == nullptr) return;
  const scalar_t resolution = static_cast<scalar_t>(level.resolution);
  for (int c = 0; c < 3; ++c)
    if (passes_clamp(point[c])) grad[c] += resolution * d_frac[c];
}

// Adds point n's level-l share of dL'/de (D_k g into row k); nothing when b is absent.
template <typename scalar_t>
MP3D_HOST_DEVICE void scatter_double_backward_embedding_grad(const DoubleBackwardArgs<scalar_t>& a,
                                                             const Level& level, int64_t l,
                                                             int64_t n) {
  scalar_t q[3];
  if (!masked_point_grad(a, level, n, q)) return;
  const Cell<scalar_t> cell = locate(a.points + 3 * n, level);
  const scalar_t* g = a.grad_features + (n * a.n_levels + l) * a.n_features;
  for (int k = 0; k < 8; ++k) {
    const scalar_t w[3] = {axis_weight(cell, k, 0), axis_weight(cell, k, 1),
                           axis_weight(cell, k, 2)};
    const scalar_t d_k = directional_weight(k, w, q);
    scalar_t* row = a.grad_embeddings + cell.rows[k] * a.n_features;
    for (int64_t f = 0; f < a.n_features; ++f) add_to(row + f, d_k * g[f]);
  }
}

}  // namespace hash_encoding
}  // namespace mp3d
