// Checks, allocation and argument plumbing shared by the CPU and CUDA Gaussian launchers.
#pragma once

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <tuple>

#include "gaussians.h"

namespace mp3d {
namespace gaussians {

using at::Tensor;

inline void check_float(const Tensor& x, const char* name, const Tensor& like) {
  TORCH_CHECK_VALUE(x.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK_VALUE(x.device() == like.device(), name, " must be on device ", like.device(),
                    ", got ", x.device());
  TORCH_CHECK_VALUE(x.scalar_type() == like.scalar_type(), name, " must have dtype ",
                    like.scalar_type(), ", got ", x.scalar_type());
}

inline void check_rows(const Tensor& x, const char* name, int64_t n, int64_t cols) {
  const bool ok = cols == 0 ? (x.dim() == 1 && x.size(0) == n)
                            : (x.dim() == 2 && x.size(0) == n && x.size(1) == cols);
  TORCH_CHECK_VALUE(ok, name, " must have ", n, " rows of ", cols, " values, got ", x.sizes());
}

inline void check_projection_inputs(const Tensor& means, const Tensor& quats,
                                    const Tensor& scales, const Tensor& viewmat,
                                    const Tensor& K) {
  TORCH_CHECK_VALUE(means.dim() == 2 && means.size(1) == 3, "means must be [N,3], got ",
                    means.sizes());
  const int64_t n = means.size(0);
  check_float(means, "means", means);
  check_float(quats, "quats", means);
  check_float(scales, "scales", means);
  check_rows(quats, "quats", n, 4);
  check_rows(scales, "scales", n, 3);
  TORCH_CHECK_VALUE(viewmat.sizes() == at::IntArrayRef({4, 4}), "viewmat must be [4,4]");
  TORCH_CHECK_VALUE(K.sizes() == at::IntArrayRef({3, 3}), "K must be [3,3]");
}

// The camera of viewmat [4,4] and K [3,3] (read on the host, so a small copy for CUDA).
template <typename scalar_t>
Camera<scalar_t> make_camera(const Tensor& viewmat, const Tensor& K, int64_t width,
                             int64_t height, double near) {
  const Tensor v = viewmat.to(at::kCPU, at::CppTypeToScalarType<scalar_t>::value).contiguous();
  const Tensor k = K.to(at::kCPU, at::CppTypeToScalarType<scalar_t>::value).contiguous();
  const scalar_t* vp = v.data_ptr<scalar_t>();
  const scalar_t* kp = k.data_ptr<scalar_t>();
  Camera<scalar_t> c;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) c.R[3 * i + j] = vp[4 * i + j];
    c.t[i] = vp[4 * i + 3];
  }
  c.fx = kp[0];
  c.fy = kp[4];
  c.cx = kp[2];
  c.cy = kp[5];
  c.near = static_cast<scalar_t>(near);
  c.width = width;
  c.height = height;
  return c;
}

inline void check_sh_inputs(const Tensor& sh, const Tensor& dirs, int64_t degree) {
  TORCH_CHECK_VALUE(sh.dim() == 3 && sh.size(2) == 3, "sh must be [N,K,3], got ", sh.sizes());
  TORCH_CHECK_VALUE(degree >= 0 && degree <= 3, "degree must be in 0..3, got ", degree);
  TORCH_CHECK_VALUE(sh.size(1) >= (degree + 1) * (degree + 1), "sh must have at least ",
                    (degree + 1) * (degree + 1), " coefficients, got ", sh.size(1));
  check_float(sh, "sh", sh);
  check_float(dirs, "dirs", sh);
  check_rows(dirs, "dirs", sh.size(0), 3);
}

inline void check_splat_inputs(const Tensor& means2d, const Tensor& conics,
                               const Tensor& colors, const Tensor& opacities,
                               const Tensor& depths) {
  TORCH_CHECK_VALUE(means2d.dim() == 2 && means2d.size(1) == 2, "means2d must be [N,2], got ",
                    means2d.sizes());
  const int64_t n = means2d.size(0);
  check_float(means2d, "means2d", means2d);
  check_float(conics, "conics", means2d);
  check_float(colors, "colors", means2d);
  check_float(opacities, "opacities", means2d);
  check_float(depths, "depths", means2d);
  check_rows(conics, "conics", n, 3);
  check_rows(colors, "colors", n, 3);
  check_rows(opacities, "opacities", n, 0);
  check_rows(depths, "depths", n, 0);
}

inline void check_bin_inputs(const Tensor& means2d, const Tensor& conics,
                             const Tensor& opacities, const Tensor& depths,
                             const Tensor& radii) {
  TORCH_CHECK_VALUE(means2d.dim() == 2 && means2d.size(1) == 2, "means2d must be [N,2], got ",
                    means2d.sizes());
  const int64_t n = means2d.size(0);
  check_float(means2d, "means2d", means2d);
  check_float(conics, "conics", means2d);
  check_float(opacities, "opacities", means2d);
  check_float(depths, "depths", means2d);
  check_rows(conics, "conics", n, 3);
  check_rows(opacities, "opacities", n, 0);
  check_rows(depths, "depths", n, 0);
  TORCH_CHECK_VALUE(radii.scalar_type() == at::kInt && radii.is_contiguous(),
                    "radii must be contiguous int32");
  TORCH_CHECK_VALUE(radii.device() == means2d.device(), "radii must be on device ",
                    means2d.device(), ", got ", radii.device());
  check_rows(radii, "radii", n, 0);
}

inline void check_image_size(int64_t width, int64_t height, int64_t tile_size) {
  TORCH_CHECK_VALUE(width > 0 && height > 0, "width and height must be positive, got ", width,
                    "x", height);
  TORCH_CHECK_VALUE(tile_size > 0, "tile_size must be positive, got ", tile_size);
}

inline void check_tiles(const Tensor& tile_offsets, const Tensor& gaussian_ids,
                        const Tensor& means2d, int64_t n_tiles) {
  TORCH_CHECK_VALUE(tile_offsets.is_contiguous() && gaussian_ids.is_contiguous(),
                    "tile lists must be contiguous");
  TORCH_CHECK_VALUE(tile_offsets.scalar_type() == at::kLong &&
                        gaussian_ids.scalar_type() == at::kLong,
                    "tile_offsets and gaussian_ids must be int64");
  TORCH_CHECK_VALUE(tile_offsets.device() == means2d.device() &&
                        gaussian_ids.device() == means2d.device(),
                    "tile lists must be on the device of means2d");
  TORCH_CHECK_VALUE(tile_offsets.dim() == 1 && tile_offsets.numel() == n_tiles + 1,
                    "tile_offsets must have ", n_tiles + 1, " entries, got ",
                    tile_offsets.numel());
}

// Splat views of the per-Gaussian inputs of the rasterizer.
template <typename T>
struct SplatInputs {
  const T* means2d;
  const T* conics;
  const T* colors;
  const T* opacities;
  const T* depths;

  MP3D_HOST_DEVICE Splat<T> operator[](int64_t g) const {
    Splat<T> s;
    s.u = means2d[2 * g];
    s.v = means2d[2 * g + 1];
    s.a = conics[3 * g];
    s.b = conics[3 * g + 1];
    s.c = conics[3 * g + 2];
    s.opacity = opacities[g];
    s.rgb[0] = colors[3 * g];
    s.rgb[1] = colors[3 * g + 1];
    s.rgb[2] = colors[3 * g + 2];
    s.depth = depths[g];
    s.m_cut = splat_cut(s.opacity);
    return s;
  }
};

template <typename T>
SplatInputs<T> splat_inputs(const Tensor& means2d, const Tensor& conics, const Tensor& colors,
                            const Tensor& opacities, const Tensor& depths) {
  return {means2d.data_ptr<T>(), conics.data_ptr<T>(), colors.data_ptr<T>(),
          opacities.data_ptr<T>(), depths.data_ptr<T>()};
}

inline int64_t tiles_along(int64_t pixels, int64_t tile_size) {
  return (pixels + tile_size - 1) / tile_size;
}

// Splits per-Gaussian gradients [N, kSplatGrads] into (means2d, conics, colors, opacities,
// depths) in the order of Splat's fields.
inline std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> split_splat_grads(
    const Tensor& grads) {
  return {grads.narrow(1, 0, 2).contiguous(), grads.narrow(1, 2, 3).contiguous(),
          grads.narrow(1, 6, 3).contiguous(), grads.select(1, 5).contiguous(),
          grads.select(1, 9).contiguous()};
}

}  // namespace gaussians
}  // namespace mp3d
