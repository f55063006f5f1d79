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

}  // namespace hash_encoding
}  // namespace mp3d
