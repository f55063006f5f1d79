// C++ CPU kernels for Gaussian splatting: per-Gaussian work parallel over Gaussians,
// rasterization parallel over 16x16 tiles (each tile's splats gathered once into a
// contiguous buffer, then walked splat by splat over the rows and pixels each reaches).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "../parallel.h"
#include "gaussians_host.h"

namespace mp3d {
namespace gaussians {
namespace {

constexpr int64_t kGaussianGrain = 1024;

std::tuple<Tensor, Tensor, Tensor, Tensor> project_fwd_cpu(const Tensor& means,
                                                           const Tensor& quats,
                                                           const Tensor& scales,
                                                           const Tensor& viewmat,
                                                           const Tensor& K, int64_t width,
                                                           int64_t height, double near) {
  check_projection_inputs(means, quats, scales, viewmat, K);
  check_image_size(width, height, 1);
  const int64_t n = means.size(0);
  Tensor means2d = at::empty({n, 2}, means.options());
  Tensor conics = at::empty({n, 3}, means.options());
  Tensor depths = at::empty({n}, means.options());
  Tensor radii = at::empty({n}, means.options().dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "gaussians_project_fwd_cpu", [&] {
    const auto camera = make_camera<scalar_t>(viewmat, K, width, height, near);
    const scalar_t* m = means.data_ptr<scalar_t>();
    const scalar_t* q = quats.data_ptr<scalar_t>();
    const scalar_t* s = scales.data_ptr<scalar_t>();
    scalar_t* out_means2d = means2d.data_ptr<scalar_t>();
    scalar_t* out_conics = conics.data_ptr<scalar_t>();
    scalar_t* out_depths = depths.data_ptr<scalar_t>();
    int32_t* out_radii = radii.data_ptr<int32_t>();
    at::parallel_for(0, n, kGaussianGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Projection<scalar_t> p;
        project_one(m + 3 * i, q + 4 * i, s + 3 * i, camera, p);
        project_outputs(p, camera, out_means2d + 2 * i, out_conics + 3 * i, out_depths + i,
                        out_radii + i);
      }
    });
  });
  return {means2d, conics, depths, radii};
}

std::tuple<Tensor, Tensor, Tensor> project_bwd_cpu(const Tensor& grad_means2d,
                                                   const Tensor& grad_conics,
                                                   const Tensor& grad_depths,
                                                   const Tensor& means, const Tensor& quats,
                                                   const Tensor& scales, const Tensor& viewmat,
                                                   const Tensor& K, double near) {
  check_projection_inputs(means, quats, scales, viewmat, K);
  const int64_t n = means.size(0);
  check_float(grad_means2d, "grad_means2d", means);
  check_float(grad_conics, "grad_conics", means);
  check_float(grad_depths, "grad_depths", means);
  check_rows(grad_means2d, "grad_means2d", n, 2);
  check_rows(grad_conics, "grad_conics", n, 3);
  check_rows(grad_depths, "grad_depths", n, 0);
  Tensor grad_means = at::empty({n, 3}, means.options());
  Tensor grad_quats = at::empty({n, 4}, means.options());
  Tensor grad_scales = at::empty({n, 3}, means.options());
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "gaussians_project_bwd_cpu", [&] {
    // Width and height only decide culling, which the backward pass does not need.
    const auto camera = make_camera<scalar_t>(viewmat, K, 1, 1, near);
    const scalar_t* m = means.data_ptr<scalar_t>();
    const scalar_t* q = quats.data_ptr<scalar_t>();
    const scalar_t* s = scales.data_ptr<scalar_t>();
    const scalar_t* gm2 = grad_means2d.data_ptr<scalar_t>();
    const scalar_t* gcon = grad_conics.data_ptr<scalar_t>();
    const scalar_t* gdep = grad_depths.data_ptr<scalar_t>();
    scalar_t* gm = grad_means.data_ptr<scalar_t>();
    scalar_t* gq = grad_quats.data_ptr<scalar_t>();
    scalar_t* gs = grad_scales.data_ptr<scalar_t>();
    at::parallel_for(0, n, kGaussianGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        project_one_backward(m + 3 * i, q + 4 * i, s + 3 * i, camera, gm2 + 2 * i,
                             gcon + 3 * i, gdep[i], gm + 3 * i, gq + 4 * i, gs + 3 * i);
      }
    });
  });
  return {grad_means, grad_quats, grad_scales};
}

Tensor sh_fwd_cpu(const Tensor& sh, const Tensor& dirs, int64_t degree) {
  check_sh_inputs(sh, dirs, degree);
  const int64_t n = sh.size(0), stride = 3 * sh.size(1);
  Tensor colors = at::empty({n, 3}, sh.options());
  AT_DISPATCH_FLOATING_TYPES(sh.scalar_type(), "gaussians_sh_fwd_cpu", [&] {
    const scalar_t* coeffs = sh.data_ptr<scalar_t>();
    const scalar_t* d = dirs.data_ptr<scalar_t>();
    scalar_t* out = colors.data_ptr<scalar_t>();
    at::parallel_for(0, n, kGaussianGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        sh_color(coeffs + stride * i, d + 3 * i, static_cast<int>(degree), out + 3 * i);
    });
  });
  return colors;
}

std::tuple<Tensor, Tensor> sh_bwd_cpu(const Tensor& grad_colors, const Tensor& sh,
                                      const Tensor& dirs, int64_t degree, bool dirs_grad) {
  check_sh_inputs(sh, dirs, degree);
  const int64_t n = sh.size(0), stride = 3 * sh.size(1);
  check_float(grad_colors, "grad_colors", sh);
  check_rows(grad_colors, "grad_colors", n, 3);
  Tensor grad_sh = at::zeros_like(sh);  // coefficients above the degree get zero
  Tensor grad_dirs = at::empty({dirs_grad ? n : 0, 3}, sh.options());
  AT_DISPATCH_FLOATING_TYPES(sh.scalar_type(), "gaussians_sh_bwd_cpu", [&] {
    const scalar_t* coeffs = sh.data_ptr<scalar_t>();
    const scalar_t* d = dirs.data_ptr<scalar_t>();
    const scalar_t* g = grad_colors.data_ptr<scalar_t>();
    scalar_t* gsh = grad_sh.data_ptr<scalar_t>();
    scalar_t* gd = dirs_grad ? grad_dirs.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, n, kGaussianGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        sh_color_backward(coeffs + stride * i, d + 3 * i, static_cast<int>(degree),
                          g + 3 * i, gsh + stride * i, gd == nullptr ? nullptr : gd + 3 * i);
    });
  });
  return {grad_sh, grad_dirs};
}

// Tile lists: every binned Gaussian in each tile its rect covers, in order of depth (ties by
// index, as a stable sort of the depths gives).
std::tuple<Tensor, Tensor> tile_bin_cpu(const Tensor& means2d, const Tensor& conics,
                                        const Tensor& opacities, const Tensor& depths,
                                        const Tensor& radii, int64_t width, int64_t height,
                                        int64_t tile_size) {
  check_image_size(width, height, tile_size);
  check_bin_inputs(means2d, conics, opacities, depths, radii);
  const int64_t n = means2d.size(0);
  const int64_t tiles_x = tiles_along(width, tile_size);
  const int64_t n_tiles = tiles_x * tiles_along(height, tile_size);
  Tensor tile_offsets = at::zeros({n_tiles + 1}, means2d.options().dtype(at::kLong));
  std::vector<int64_t> rects(4 * n);  // tx0, tx1, ty0, ty1; tx0 > tx1 when not binned
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "gaussians_tile_bin_cpu", [&] {
    const scalar_t* m = means2d.data_ptr<scalar_t>();
    const scalar_t* c = conics.data_ptr<scalar_t>();
    const scalar_t* o = opacities.data_ptr<scalar_t>();
    const int32_t* r = radii.data_ptr<int32_t>();
    at::parallel_for(0, n, kGaussianGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        int64_t* rect = rects.data() + 4 * i;
        if (r[i] <= 0 || !tile_rect(m + 2 * i, c + 3 * i, o[i], width, height, tile_size,
                                    rect[0], rect[1], rect[2], rect[3])) {
          rect[0] = 1;
          rect[1] = 0;
        }
      }
    });
  });
  int64_t* offsets = tile_offsets.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t* rect = rects.data() + 4 * i;
    for (int64_t ty = rect[2]; rect[0] <= rect[1] && ty <= rect[3]; ++ty)
      for (int64_t tx = rect[0]; tx <= rect[1]; ++tx) ++offsets[ty * tiles_x + tx + 1];
  }
  for (int64_t t = 0; t < n_tiles; ++t) offsets[t + 1] += offsets[t];
  Tensor gaussian_ids = at::empty({offsets[n_tiles]}, tile_offsets.options());
  const Tensor order = std::get<1>(at::sort(depths, /*stable=*/true, 0, false));
  const int64_t* sorted = order.data_ptr<int64_t>();
  int64_t* ids = gaussian_ids.data_ptr<int64_t>();
  std::vector<int64_t> cursor(offsets, offsets + n_tiles);
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = sorted[k];
    const int64_t* rect = rects.data() + 4 * i;
    for (int64_t ty = rect[2]; rect[0] <= rect[1] && ty <= rect[3]; ++ty)
      for (int64_t tx = rect[0]; tx <= rect[1]; ++tx) ids[cursor[ty * tiles_x + tx]++] = i;
  }
  return {tile_offsets, gaussian_ids};
}

// Pixel rectangle [x0, x1) x [y0, y1) of a tile.
struct TileBounds {
  int64_t x0, x1, y0, y1;
};

inline TileBounds tile_bounds(int64_t tile, int64_t width, int64_t height, int64_t tile_size) {
  const int64_t tiles_x = tiles_along(width, tile_size);
  const int64_t x0 = (tile % tiles_x) * tile_size, y0 = (tile / tiles_x) * tile_size;
  return {x0, std::min(x0 + tile_size, width), y0, std::min(y0 + tile_size, height)};
}

// Tile indices by the length of their splat lists, longest first: the order in which
// parallel_for_dynamic hands tiles to threads, so that the last tiles taken are short.
std::vector<int64_t> tiles_busiest_first(const int64_t* offsets, int64_t n_tiles) {
  std::vector<int64_t> order(n_tiles);
  for (int64_t t = 0; t < n_tiles; ++t) order[t] = t;
  std::stable_sort(order.begin(), order.end(), [&](int64_t i, int64_t j) {
    return offsets[i + 1] - offsets[i] > offsets[j + 1] - offsets[j];
  });
  return order;
}

template <typename T>
void gather_splats(const SplatInputs<T>& inputs, const int64_t* ids, int64_t begin,
                   int64_t end, std::vector<Splat<T>>& out) {
  out.resize(end - begin);
  for (int64_t k = begin; k < end; ++k) out[k - begin] = inputs[ids[k]];
}

// Rows [y0, y1] (clipped to [row_begin, row_end)) whose pixel centres row_span can find
// on the splat's ellipse: |dy| <= sqrt(m_cut a / det) plus a pixel for rounding, a superset
// of the rows where row_span returns true. Every row when the conic is not an ellipse.
template <typename T>
bool row_range(const Splat<T>& s, int64_t row_begin, int64_t row_end, int64_t& y0,
               int64_t& y1) {
  if (s.m_cut < T(0)) return false;
  y0 = row_begin;
  y1 = row_end - 1;
  const T det = s.a * s.c - s.b * s.b;
  if (!(s.a > T(0)) || !(det > T(0))) return true;
  const T half = std::sqrt(s.m_cut * s.a / det);
  if (!std::isfinite(half)) return true;
  const T lo = s.v - half - T(1.5);  // centre y + 0.5 >= v - half - 1
  const T hi = s.v + half + T(0.5);  // centre y + 0.5 <= v + half + 1
  if (hi < T(row_begin) || lo > T(row_end - 1)) return false;
  if (lo > T(row_begin)) y0 = static_cast<int64_t>(std::ceil(lo));
  if (hi < T(row_end - 1)) y1 = static_cast<int64_t>(hi);
  return y0 <= y1;
}

// The CPU rasterizer walks a tile splat by splat, front to back: each splat visits only the
// rows its ellipse reaches (row_range) and, in each, only the pixels on its chord
// (row_span), instead of testing every pixel against every splat. Each pixel still sees
// the splats in order with the arithmetic of rasterize_pixel and rasterize_pixel_backward,
// so the results are the same.
template <typename T>
void rasterize_tile_forward(const std::vector<Splat<T>>& splats, const TileBounds& b,
                            int64_t width, T* out_rgb, T* out_alpha, T* out_depth, T* out_t,
                            int32_t* out_n) {
  const int64_t count = static_cast<int64_t>(splats.size());
  const int64_t tile_width = b.x1 - b.x0, tile_height = b.y1 - b.y0;
  const int64_t n_pixels = tile_width * tile_height;
  std::vector<PixelResult<T>> pixels(
      n_pixels, {{T(0), T(0), T(0)}, T(0), T(0), T(1), static_cast<int32_t>(count)});
  std::vector<char> done(n_pixels, 0);
  std::vector<int64_t> row_done(tile_height, 0);
  int64_t n_done = 0;
  for (int64_t k = 0; k < count && n_done < n_pixels; ++k) {
    const Splat<T>& s = splats[k];
    int64_t y_first, y_last;
    if (!row_range(s, b.y0, b.y1, y_first, y_last)) continue;
    for (int64_t y = y_first; y <= y_last; ++y) {
      const int64_t row = y - b.y0;
      if (row_done[row] == tile_width) continue;
      const T py = static_cast<T>(y) + T(0.5);
      int64_t x0, x1;
      if (!row_span(s, py, b.x0, b.x1, x0, x1)) continue;
      for (int64_t x = x0; x <= x1; ++x) {
        const int64_t i = row * tile_width + x - b.x0;
        if (done[i]) continue;
        T dx, dy, power;
        const T alpha = splat_alpha(s, static_cast<T>(x) + T(0.5), py, dx, dy, power);
        if (alpha < T(kAlphaMin)) continue;
        PixelResult<T>& r = pixels[i];
        const T next = r.transmittance * (T(1) - alpha);
        if (next < T(kTransmittanceMin)) {
          r.n_visited = static_cast<int32_t>(k);
          done[i] = 1;
          ++row_done[row];
          ++n_done;
          continue;
        }
        const T w = alpha * r.transmittance;
        for (int c = 0; c < 3; ++c) r.rgb[c] += w * s.rgb[c];
        r.alpha += w;
        r.depth += w * s.depth;
        r.transmittance = next;
      }
    }
  }
  for (int64_t row = 0; row < tile_height; ++row) {
    for (int64_t col = 0; col < tile_width; ++col) {
      const PixelResult<T>& r = pixels[row * tile_width + col];
      const int64_t pixel = (b.y0 + row) * width + b.x0 + col;
      for (int c = 0; c < 3; ++c) out_rgb[3 * pixel + c] = r.rgb[c];
      out_alpha[pixel] = r.alpha;
      out_depth[pixel] = r.depth;
      out_t[pixel] = r.transmittance;
      out_n[pixel] = r.n_visited;
    }
  }
}

// Adds the tile's pixels' gradients to grads [count, kSplatGrads] (the tile's list entries),
// walking the splats back to front.
template <typename T>
void rasterize_tile_backward(const std::vector<Splat<T>>& splats, const TileBounds& b,
                             int64_t width, const T* g_rgb, const T* g_alpha,
                             const T* g_depth, const T* final_t, const int32_t* visited,
                             T* grads) {
  const int64_t tile_width = b.x1 - b.x0, tile_height = b.y1 - b.y0;
  std::vector<BackwardPixel<T>> pixels;
  pixels.reserve(tile_width * tile_height);
  std::vector<int32_t> pixel_visited(tile_width * tile_height);
  std::vector<int64_t> row_last(tile_height, 0);  // splats any pixel of the row visited
  int64_t last = 0;
  for (int64_t row = 0; row < tile_height; ++row) {
    for (int64_t col = 0; col < tile_width; ++col) {
      const int64_t pixel = (b.y0 + row) * width + b.x0 + col;
      pixels.push_back(backward_pixel(final_t[pixel], g_rgb + 3 * pixel, g_alpha[pixel],
                                      g_depth[pixel]));
      pixel_visited[row * tile_width + col] = visited[pixel];
      row_last[row] = std::max<int64_t>(row_last[row], visited[pixel]);
    }
    last = std::max(last, row_last[row]);
  }
  for (int64_t k = last - 1; k >= 0; --k) {
    const Splat<T>& s = splats[k];
    int64_t y_first, y_last;
    if (!row_range(s, b.y0, b.y1, y_first, y_last)) continue;
    T total[kSplatGrads] = {};
    bool drawn = false;
    for (int64_t y = y_first; y <= y_last; ++y) {
      const int64_t row = y - b.y0;
      if (k >= row_last[row]) continue;
      const T py = static_cast<T>(y) + T(0.5);
      int64_t x0, x1;
      if (!row_span(s, py, b.x0, b.x1, x0, x1)) continue;
      for (int64_t x = x0; x <= x1; ++x) {
        const int64_t i = row * tile_width + x - b.x0;
        if (k >= pixel_visited[i]) continue;
        T dx, dy, power;
        const T alpha = splat_alpha(s, static_cast<T>(x) + T(0.5), py, dx, dy, power);
        if (alpha < T(kAlphaMin)) continue;
        T grad[kSplatGrads];
        backward_step(s, dx, dy, power, alpha, pixels[i], grad);
        for (int c = 0; c < kSplatGrads; ++c) total[c] += grad[c];
        drawn = true;
      }
    }
    if (drawn)
      for (int c = 0; c < kSplatGrads; ++c) grads[kSplatGrads * k + c] += total[c];
  }
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_fwd_cpu(
    const Tensor& means2d, const Tensor& conics, const Tensor& colors, const Tensor& opacities,
    const Tensor& depths, const Tensor& tile_offsets, const Tensor& gaussian_ids, int64_t width,
    int64_t height, int64_t tile_size) {
  check_splat_inputs(means2d, conics, colors, opacities, depths);
  check_image_size(width, height, tile_size);
  const int64_t n_tiles = tiles_along(width, tile_size) * tiles_along(height, tile_size);
  check_tiles(tile_offsets, gaussian_ids, means2d, n_tiles);
  const auto opts = means2d.options();
  Tensor rgb = at::empty({height, width, 3}, opts);
  Tensor alpha = at::empty({height, width}, opts);
  Tensor depth = at::empty({height, width}, opts);
  Tensor transmittance = at::empty({height, width}, opts);
  Tensor n_visited = at::empty({height, width}, opts.dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "gaussians_rasterize_fwd_cpu", [&] {
    const auto inputs = splat_inputs<scalar_t>(means2d, conics, colors, opacities, depths);
    const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
    const int64_t* ids = gaussian_ids.data_ptr<int64_t>();
    scalar_t* out_rgb = rgb.data_ptr<scalar_t>();
    scalar_t* out_alpha = alpha.data_ptr<scalar_t>();
    scalar_t* out_depth = depth.data_ptr<scalar_t>();
    scalar_t* out_t = transmittance.data_ptr<scalar_t>();
    int32_t* out_n = n_visited.data_ptr<int32_t>();
    const std::vector<int64_t> order = tiles_busiest_first(offsets, n_tiles);
    using Splats = std::vector<Splat<scalar_t>>;
    parallel_for_dynamic<Splats>(n_tiles, [&](int64_t task, Splats& splats) {
      const int64_t tile = order[task];
      gather_splats(inputs, ids, offsets[tile], offsets[tile + 1], splats);
      rasterize_tile_forward(splats, tile_bounds(tile, width, height, tile_size), width,
                             out_rgb, out_alpha, out_depth, out_t, out_n);
    });
  });
  return {rgb, alpha, depth, transmittance, n_visited};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_bwd_cpu(
    const Tensor& grad_rgb, const Tensor& grad_alpha, const Tensor& grad_depth,
    const Tensor& means2d, const Tensor& conics, const Tensor& colors, const Tensor& opacities,
    const Tensor& depths, const Tensor& tile_offsets, const Tensor& gaussian_ids,
    const Tensor& transmittance, const Tensor& n_visited, int64_t width, int64_t height,
    int64_t tile_size) {
  check_splat_inputs(means2d, conics, colors, opacities, depths);
  check_image_size(width, height, tile_size);
  const int64_t n_tiles = tiles_along(width, tile_size) * tiles_along(height, tile_size);
  check_tiles(tile_offsets, gaussian_ids, means2d, n_tiles);
  for (const Tensor* t : {&grad_rgb, &grad_alpha, &grad_depth, &transmittance}) {
    check_float(*t, "pixel tensors", means2d);
    TORCH_CHECK_VALUE(t->numel() == height * width * (t == &grad_rgb ? 3 : 1),
                      "pixel tensors must match the image size ", height, "x", width);
  }
  TORCH_CHECK_VALUE(n_visited.scalar_type() == at::kInt && n_visited.is_contiguous() &&
                        n_visited.numel() == height * width,
                    "n_visited must be contiguous int32 [H,W]");
  // One row of gradients per tile-list entry: a tile's entries are touched only by the
  // thread that owns the tile, so no two threads write the same row.
  const int64_t n_entries = gaussian_ids.numel();
  Tensor entry_grads = at::zeros({n_entries, kSplatGrads}, means2d.options());
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "gaussians_rasterize_bwd_cpu", [&] {
    const auto inputs = splat_inputs<scalar_t>(means2d, conics, colors, opacities, depths);
    const int64_t* offsets = tile_offsets.data_ptr<int64_t>();
    const int64_t* ids = gaussian_ids.data_ptr<int64_t>();
    const scalar_t* g_rgb = grad_rgb.data_ptr<scalar_t>();
    const scalar_t* g_alpha = grad_alpha.data_ptr<scalar_t>();
    const scalar_t* g_depth = grad_depth.data_ptr<scalar_t>();
    const scalar_t* final_t = transmittance.data_ptr<scalar_t>();
    const int32_t* visited = n_visited.data_ptr<int32_t>();
    scalar_t* grads = entry_grads.data_ptr<scalar_t>();
    const std::vector<int64_t> order = tiles_busiest_first(offsets, n_tiles);
    using Splats = std::vector<Splat<scalar_t>>;
    parallel_for_dynamic<Splats>(n_tiles, [&](int64_t task, Splats& splats) {
      const int64_t tile = order[task];
      gather_splats(inputs, ids, offsets[tile], offsets[tile + 1], splats);
      rasterize_tile_backward(splats, tile_bounds(tile, width, height, tile_size), width,
                              g_rgb, g_alpha, g_depth, final_t, visited,
                              grads + kSplatGrads * offsets[tile]);
    });
  });
  Tensor grads = at::zeros({means2d.size(0), kSplatGrads}, means2d.options());
  grads.index_add_(0, gaussian_ids, entry_grads);
  return split_splat_grads(grads);
}

}  // namespace
}  // namespace gaussians
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) {
  m.impl("gaussians_project_fwd", &mp3d::gaussians::project_fwd_cpu);
  m.impl("gaussians_project_bwd", &mp3d::gaussians::project_bwd_cpu);
  m.impl("gaussians_sh_fwd", &mp3d::gaussians::sh_fwd_cpu);
  m.impl("gaussians_sh_bwd", &mp3d::gaussians::sh_bwd_cpu);
  m.impl("gaussians_tile_bin", &mp3d::gaussians::tile_bin_cpu);
  m.impl("gaussians_rasterize_fwd", &mp3d::gaussians::rasterize_fwd_cpu);
  m.impl("gaussians_rasterize_bwd", &mp3d::gaussians::rasterize_bwd_cpu);
}
