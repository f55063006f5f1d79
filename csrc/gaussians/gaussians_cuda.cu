// CUDA kernels for Gaussian splatting, with the semantics and layouts of gaussians_cpu.cpp.
//
//   projection, SH colour   one thread per Gaussian (the per-Gaussian math of gaussians.h)
//   tile binning            Gaussians taken in depth order (a stable argsort of the depths,
//                           as on the CPU); one entry per (Gaussian, tile) written in that
//                           order with a 32-bit tile key; a stable radix sort on the tile
//                           bits only then leaves every tile's list in depth order, ties by
//                           index. The sort works in two int64 [M] buffers, each holding the
//                           keys and the ids as int32 halves; the one the sort leaves free
//                           becomes the int64 gaussian_ids (16 bytes per entry at the peak).
//   rasterization           one block per tile, one thread per pixel; the tile's splats are
//                           read in batches of kBatch into shared memory. The forward pass
//                           stops once every pixel of the tile is done; the backward pass
//                           walks each pixel back to front from its n_visited, sums the
//                           gradients of a splat over the warp and adds them with one
//                           atomicAdd per warp and value.
#include <ATen/Dispatch.h>
#include <ATen/ops/cumsum.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cub/device/device_radix_sort.cuh>

#include <climits>
#include <cstdint>
#include <type_traits>

#include "gaussians_host.h"

namespace mp3d {
namespace gaussians {
namespace {

constexpr int kThreads = 256;      // per-Gaussian kernels
constexpr int kBatch = 256;        // splats per shared-memory batch of the rasterizer
constexpr int kMaxTileSize = 16;   // a tile's pixels fit one block of at most 256 threads
constexpr unsigned int kFullMask = 0xffffffffu;

inline unsigned int n_blocks(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream(); }

__device__ __forceinline__ int64_t thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

// ----------------------------------------------------------------------------- projection

template <typename T>
__global__ void project_fwd_kernel(const T* __restrict__ means, const T* __restrict__ quats,
                                   const T* __restrict__ scales, const Camera<T> camera,
                                   int64_t n, T* __restrict__ means2d, T* __restrict__ conics,
                                   T* __restrict__ depths, int32_t* __restrict__ radii) {
  const int64_t i = thread_index();
  if (i >= n) return;
  Projection<T> p;
  project_one(means + 3 * i, quats + 4 * i, scales + 3 * i, camera, p);
  project_outputs(p, camera, means2d + 2 * i, conics + 3 * i, depths + i, radii + i);
}

template <typename T>
__global__ void project_bwd_kernel(const T* __restrict__ grad_means2d,
                                   const T* __restrict__ grad_conics,
                                   const T* __restrict__ grad_depths,
                                   const T* __restrict__ means, const T* __restrict__ quats,
                                   const T* __restrict__ scales, const Camera<T> camera,
                                   int64_t n, T* __restrict__ grad_means,
                                   T* __restrict__ grad_quats, T* __restrict__ grad_scales) {
  const int64_t i = thread_index();
  if (i >= n) return;
  project_one_backward(means + 3 * i, quats + 4 * i, scales + 3 * i, camera,
                       grad_means2d + 2 * i, grad_conics + 3 * i, grad_depths[i],
                       grad_means + 3 * i, grad_quats + 4 * i, grad_scales + 3 * i);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> project_fwd_cuda(const Tensor& means,
                                                            const Tensor& quats,
                                                            const Tensor& scales,
                                                            const Tensor& viewmat,
                                                            const Tensor& K, int64_t width,
                                                            int64_t height, double near) {
  check_projection_inputs(means, quats, scales, viewmat, K);
  check_image_size(width, height, 1);
  const c10::cuda::CUDAGuard guard(means.device());
  const int64_t n = means.size(0);
  Tensor means2d = at::empty({n, 2}, means.options());
  Tensor conics = at::empty({n, 3}, means.options());
  Tensor depths = at::empty({n}, means.options());
  Tensor radii = at::empty({n}, means.options().dtype(at::kInt));
  if (n == 0) return {means2d, conics, depths, radii};
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "gaussians_project_fwd_cuda", [&] {
    const auto camera = make_camera<scalar_t>(viewmat, K, width, height, near);
    project_fwd_kernel<scalar_t><<<n_blocks(n), kThreads, 0, current_stream()>>>(
        means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(),
        camera, n, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
        depths.data_ptr<scalar_t>(), radii.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {means2d, conics, depths, radii};
}

std::tuple<Tensor, Tensor, Tensor> project_bwd_cuda(const Tensor& grad_means2d,
                                                    const Tensor& grad_conics,
                                                    const Tensor& grad_depths,
                                                    const Tensor& means, const Tensor& quats,
                                                    const Tensor& scales,
                                                    const Tensor& viewmat, const Tensor& K,
                                                    double near) {
  check_projection_inputs(means, quats, scales, viewmat, K);
  const int64_t n = means.size(0);
  check_float(grad_means2d, "grad_means2d", means);
  check_float(grad_conics, "grad_conics", means);
  check_float(grad_depths, "grad_depths", means);
  check_rows(grad_means2d, "grad_means2d", n, 2);
  check_rows(grad_conics, "grad_conics", n, 3);
  check_rows(grad_depths, "grad_depths", n, 0);
  const c10::cuda::CUDAGuard guard(means.device());
  Tensor grad_means = at::empty({n, 3}, means.options());
  Tensor grad_quats = at::empty({n, 4}, means.options());
  Tensor grad_scales = at::empty({n, 3}, means.options());
  if (n == 0) return {grad_means, grad_quats, grad_scales};
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "gaussians_project_bwd_cuda", [&] {
    // Width and height only decide culling, which the backward pass does not need.
    const auto camera = make_camera<scalar_t>(viewmat, K, 1, 1, near);
    project_bwd_kernel<scalar_t><<<n_blocks(n), kThreads, 0, current_stream()>>>(
        grad_means2d.data_ptr<scalar_t>(), grad_conics.data_ptr<scalar_t>(),
        grad_depths.data_ptr<scalar_t>(), means.data_ptr<scalar_t>(),
        quats.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(), camera, n,
        grad_means.data_ptr<scalar_t>(), grad_quats.data_ptr<scalar_t>(),
        grad_scales.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {grad_means, grad_quats, grad_scales};
}

// ----------------------------------------------------------------------------- SH colour

// The degree is a template parameter, so the basis loops unroll into registers.
template <typename T, int kDegree>
__global__ void sh_fwd_kernel(const T* __restrict__ sh, const T* __restrict__ dirs,
                              int64_t stride, int64_t n, T* __restrict__ colors) {
  const int64_t i = thread_index();
  if (i >= n) return;
  sh_color(sh + stride * i, dirs + 3 * i, kDegree, colors + 3 * i);
}

template <typename T, int kDegree>
__global__ void sh_bwd_kernel(const T* __restrict__ grad_colors, const T* __restrict__ sh,
                              const T* __restrict__ dirs, int64_t stride, int64_t n,
                              T* __restrict__ grad_sh, T* __restrict__ grad_dirs) {
  const int64_t i = thread_index();
  if (i >= n) return;
  sh_color_backward(sh + stride * i, dirs + 3 * i, kDegree, grad_colors + 3 * i,
                    grad_sh + stride * i, grad_dirs == nullptr ? nullptr : grad_dirs + 3 * i);
}

// Calls f(std::integral_constant<int, degree>) for degree in 0..3.
template <typename F>
void with_degree(int64_t degree, F&& f) {
  switch (degree) {
    case 0: f(std::integral_constant<int, 0>()); break;
    case 1: f(std::integral_constant<int, 1>()); break;
    case 2: f(std::integral_constant<int, 2>()); break;
    default: f(std::integral_constant<int, 3>()); break;  // checked to be in 0..3
  }
}

Tensor sh_fwd_cuda(const Tensor& sh, const Tensor& dirs, int64_t degree) {
  check_sh_inputs(sh, dirs, degree);
  const c10::cuda::CUDAGuard guard(sh.device());
  const int64_t n = sh.size(0), stride = 3 * sh.size(1);
  Tensor colors = at::empty({n, 3}, sh.options());
  if (n == 0) return colors;
  AT_DISPATCH_FLOATING_TYPES(sh.scalar_type(), "gaussians_sh_fwd_cuda", [&] {
    with_degree(degree, [&](auto d) {
      sh_fwd_kernel<scalar_t, decltype(d)::value>
          <<<n_blocks(n), kThreads, 0, current_stream()>>>(
              sh.data_ptr<scalar_t>(), dirs.data_ptr<scalar_t>(), stride, n,
              colors.data_ptr<scalar_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return colors;
}

std::tuple<Tensor, Tensor> sh_bwd_cuda(const Tensor& grad_colors, const Tensor& sh,
                                       const Tensor& dirs, int64_t degree, bool dirs_grad) {
  check_sh_inputs(sh, dirs, degree);
  const int64_t n = sh.size(0), stride = 3 * sh.size(1);
  check_float(grad_colors, "grad_colors", sh);
  check_rows(grad_colors, "grad_colors", n, 3);
  const c10::cuda::CUDAGuard guard(sh.device());
  Tensor grad_sh = at::zeros_like(sh);  // coefficients above the degree get zero
  Tensor grad_dirs = at::empty({dirs_grad ? n : 0, 3}, sh.options());
  if (n == 0) return {grad_sh, grad_dirs};
  AT_DISPATCH_FLOATING_TYPES(sh.scalar_type(), "gaussians_sh_bwd_cuda", [&] {
    with_degree(degree, [&](auto d) {
      sh_bwd_kernel<scalar_t, decltype(d)::value>
          <<<n_blocks(n), kThreads, 0, current_stream()>>>(
              grad_colors.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>(),
              dirs.data_ptr<scalar_t>(), stride, n, grad_sh.data_ptr<scalar_t>(),
              dirs_grad ? grad_dirs.data_ptr<scalar_t>() : nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {grad_sh, grad_dirs};
}

// ----------------------------------------------------------------------------- binning

// Thread k takes the Gaussian of depth rank k (order[k]): its tile rect (tx0, tx1, ty0, ty1;
// (1, 0, 0, 0) when not binned) and how many tiles that is.
template <typename T>
__global__ void tile_count_kernel(const int64_t* __restrict__ order,
                                  const T* __restrict__ means2d, const T* __restrict__ conics,
                                  const T* __restrict__ opacities,
                                  const int32_t* __restrict__ radii, int64_t n, int64_t width,
                                  int64_t height, int64_t tile_size, int4* __restrict__ rects,
                                  int32_t* __restrict__ counts) {
  const int64_t k = thread_index();
  if (k >= n) return;
  const int64_t i = order[k];
  int64_t tx0 = 0, tx1 = 0, ty0 = 0, ty1 = 0;
  int4 rect = make_int4(1, 0, 0, 0);
  int32_t count = 0;
  if (radii[i] > 0 && tile_rect(means2d + 2 * i, conics + 3 * i, opacities[i], width, height,
                                tile_size, tx0, tx1, ty0, ty1)) {
    rect = make_int4(static_cast<int>(tx0), static_cast<int>(tx1), static_cast<int>(ty0),
                     static_cast<int>(ty1));
    count = static_cast<int32_t>((tx1 - tx0 + 1) * (ty1 - ty0 + 1));
  }
  rects[k] = rect;
  counts[k] = count;
}

// Thread k writes the entries of the Gaussian of depth rank k at [ends[k] - counts[k],
// ends[k]): its tiles in row-major order as keys, its index as values.
__global__ void tile_emit_kernel(const int64_t* __restrict__ order,
                                 const int4* __restrict__ rects,
                                 const int32_t* __restrict__ counts,
                                 const int64_t* __restrict__ ends, int64_t n, int64_t tiles_x,
                                 uint32_t* __restrict__ keys, int32_t* __restrict__ values) {
  const int64_t k = thread_index();
  if (k >= n) return;
  const int32_t count = counts[k];
  if (count == 0) return;
  const int4 r = rects[k];
  const int32_t id = static_cast<int32_t>(order[k]);
  int64_t out = ends[k] - count;
  for (int64_t ty = r.z; ty <= r.w; ++ty) {
    for (int64_t tx = r.x; tx <= r.y; ++tx) {
      keys[out] = static_cast<uint32_t>(ty * tiles_x + tx);
      values[out] = id;
      ++out;
    }
  }
}

// Thread k of the sorted entries: where tiles start (offsets[t] = first entry of tile t, the
// end for tiles after the last entry's) and the int64 Gaussian id of entry k. Every offset in
// [0, n_tiles] is written by exactly one thread.
__global__ void tile_offsets_kernel(const uint32_t* __restrict__ keys,
                                    const int32_t* __restrict__ values, int64_t m,
                                    int64_t n_tiles, int64_t* __restrict__ offsets,
                                    int64_t* __restrict__ gaussian_ids) {
  const int64_t k = thread_index();
  if (k >= m) return;
  const int64_t tile = keys[k];
  const int64_t previous = k == 0 ? -1 : static_cast<int64_t>(keys[k - 1]);
  for (int64_t t = previous + 1; t <= tile; ++t) offsets[t] = k;
  if (k == m - 1)
    for (int64_t t = tile + 1; t <= n_tiles; ++t) offsets[t] = m;
  gaussian_ids[k] = values[k];
}

// Bits needed for the values 0 .. count - 1.
int bits_for(int64_t count) {
  int bits = 0;
  while (bits < 63 && (int64_t{1} << bits) < count) ++bits;
  return bits;
}

// Whether p points into the bytes of t.
bool holds(const Tensor& t, const void* p) {
  const char* base = static_cast<const char*>(t.data_ptr());
  const char* q = static_cast<const char*>(p);
  return q >= base && q < base + t.nbytes();
}

std::tuple<Tensor, Tensor> tile_bin_cuda(const Tensor& means2d, const Tensor& conics,
                                         const Tensor& opacities, const Tensor& depths,
                                         const Tensor& radii, int64_t width, int64_t height,
                                         int64_t tile_size) {
  check_image_size(width, height, tile_size);
  check_bin_inputs(means2d, conics, opacities, depths, radii);
  const int64_t n = means2d.size(0);
  const int64_t tiles_x = tiles_along(width, tile_size);
  const int64_t n_tiles = tiles_x * tiles_along(height, tile_size);
  TORCH_CHECK_VALUE(n_tiles < INT32_MAX && n < INT32_MAX,
                    "CUDA tile binning takes fewer than 2^31 tiles and Gaussians, got ",
                    n_tiles, " tiles and ", n, " Gaussians");
  const c10::cuda::CUDAGuard guard(means2d.device());
  const auto long_options = means2d.options().dtype(at::kLong);
  Tensor tile_offsets = at::zeros({n_tiles + 1}, long_options);
  if (n == 0) return {tile_offsets, at::empty({0}, long_options)};
  const cudaStream_t stream = current_stream();

  // Entries in depth order: keys (tiles) in the first half of `first`, values (Gaussian
  // indices) in the second, both int32.
  Tensor first, second;
  int64_t m = 0;
  {
    const Tensor order = std::get<1>(at::sort(depths, /*stable=*/true, 0, false));
    Tensor rects = at::empty({n, 4}, means2d.options().dtype(at::kInt));
    Tensor counts = at::empty({n}, means2d.options().dtype(at::kInt));
    AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "gaussians_tile_bin_cuda", [&] {
      tile_count_kernel<scalar_t><<<n_blocks(n), kThreads, 0, stream>>>(
          order.data_ptr<int64_t>(), means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
          opacities.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), n, width, height,
          tile_size, reinterpret_cast<int4*>(rects.data_ptr<int32_t>()),
          counts.data_ptr<int32_t>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    const Tensor ends = at::cumsum(counts, 0, at::kLong);
    m = ends[n - 1].item<int64_t>();
    if (m == 0) return {tile_offsets, at::empty({0}, long_options)};
    TORCH_CHECK(m <= INT32_MAX, "CUDA tile binning takes up to 2^31 - 1 tile entries, got ",
                m, " (too many or too large Gaussians for one image)");
    first = at::empty({m}, long_options);
    tile_emit_kernel<<<n_blocks(n), kThreads, 0, stream>>>(
        order.data_ptr<int64_t>(), reinterpret_cast<const int4*>(rects.data_ptr<int32_t>()),
        counts.data_ptr<int32_t>(), ends.data_ptr<int64_t>(), n, tiles_x,
        reinterpret_cast<uint32_t*>(first.data_ptr<int64_t>()),
        reinterpret_cast<int32_t*>(first.data_ptr<int64_t>()) + m);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }  // order, rects, counts and ends go back to the allocator before the sort
  second = at::empty({m}, long_options);

  // Stable sort on the tile bits only: within a tile the entries keep their depth order.
  uint32_t* keys_a = reinterpret_cast<uint32_t*>(first.data_ptr<int64_t>());
  int32_t* values_a = reinterpret_cast<int32_t*>(first.data_ptr<int64_t>()) + m;
  uint32_t* keys_b = reinterpret_cast<uint32_t*>(second.data_ptr<int64_t>());
  int32_t* values_b = reinterpret_cast<int32_t*>(second.data_ptr<int64_t>()) + m;
  cub::DoubleBuffer<uint32_t> keys(keys_a, keys_b);
  cub::DoubleBuffer<int32_t> values(values_a, values_b);
  const int tile_bits = bits_for(n_tiles);
  if (tile_bits > 0) {
    size_t temp_bytes = 0;
    C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys, values,
                                                   static_cast<int>(m), 0, tile_bits, stream));
    Tensor temp = at::empty({static_cast<int64_t>(temp_bytes) + 1},
                            means2d.options().dtype(at::kByte));
    C10_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.data_ptr(), temp_bytes, keys, values,
                                                   static_cast<int>(m), 0, tile_bits, stream));
  }
  // gaussian_ids go to the buffer that holds neither the sorted keys nor the sorted values.
  Tensor gaussian_ids;
  if (!holds(first, keys.Current()) && !holds(first, values.Current())) {
    gaussian_ids = first;
  } else if (!holds(second, keys.Current()) && !holds(second, values.Current())) {
    gaussian_ids = second;
  } else {
    gaussian_ids = at::empty({m}, long_options);
  }
  tile_offsets_kernel<<<n_blocks(m), kThreads, 0, stream>>>(
      keys.Current(), values.Current(), m, n_tiles, tile_offsets.data_ptr<int64_t>(),
      gaussian_ids.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {tile_offsets, gaussian_ids};
}

// ----------------------------------------------------------------------------- rasterization

// Where thread `tid` of a tile's block draws: pixel (x, y), and whether it is in the image
// (blocks are rounded up to whole warps, so some threads have no pixel).
struct TilePixel {
  int64_t x, y;
  bool inside;
};

__device__ __forceinline__ TilePixel tile_pixel(int64_t tile, int64_t tiles_x,
                                                int64_t tile_size, int64_t width,
                                                int64_t height) {
  const int64_t tid = threadIdx.x;
  TilePixel p;
  p.x = (tile % tiles_x) * tile_size + tid % tile_size;
  p.y = (tile / tiles_x) * tile_size + tid / tile_size;
  p.inside = tid < tile_size * tile_size && p.x < width && p.y < height;
  return p;
}

template <typename T>
__global__ void __launch_bounds__(kMaxTileSize * kMaxTileSize)
    rasterize_fwd_kernel(const SplatInputs<T> inputs, const int64_t* __restrict__ offsets,
                         const int64_t* __restrict__ ids, int64_t width, int64_t height,
                         int64_t tile_size, int64_t tiles_x, T* __restrict__ out_rgb,
                         T* __restrict__ out_alpha, T* __restrict__ out_depth,
                         T* __restrict__ out_t, int32_t* __restrict__ out_n) {
  __shared__ Splat<T> batch[kBatch];
  const int64_t tile = blockIdx.x;
  const int tid = threadIdx.x, n_threads = blockDim.x;
  const TilePixel pixel = tile_pixel(tile, tiles_x, tile_size, width, height);
  const T px = static_cast<T>(pixel.x) + T(0.5), py = static_cast<T>(pixel.y) + T(0.5);
  const int64_t begin = offsets[tile], count = offsets[tile + 1] - begin;

  T rgb[3] = {T(0), T(0), T(0)}, alpha = T(0), depth = T(0), transmittance = T(1);
  int64_t visited = count;  // as rasterize_pixel: the stopping splat, or all of them
  bool done = !pixel.inside;
  for (int64_t base = 0; base < count; base += kBatch) {
    // Also the barrier before the batch is overwritten: every thread has finished the last.
    if (__syncthreads_count(done) == n_threads) break;
    const int n_batch = static_cast<int>(count - base < kBatch ? count - base : kBatch);
    for (int j = tid; j < n_batch; j += n_threads) batch[j] = inputs[ids[begin + base + j]];
    __syncthreads();
    if (done) continue;
    for (int j = 0; j < n_batch; ++j) {
      const Splat<T>& s = batch[j];
      T dx, dy, power;
      const T a = splat_alpha(s, px, py, dx, dy, power);
      if (a < T(kAlphaMin)) continue;
      const T next = transmittance * (T(1) - a);
      if (next < T(kTransmittanceMin)) {
        done = true;
        visited = base + j;
        break;
      }
      const T w = a * transmittance;
      for (int c = 0; c < 3; ++c) rgb[c] += w * s.rgb[c];
      alpha += w;
      depth += w * s.depth;
      transmittance = next;
    }
  }
  if (!pixel.inside) return;
  const int64_t p = pixel.y * width + pixel.x;
  for (int c = 0; c < 3; ++c) out_rgb[3 * p + c] = rgb[c];
  out_alpha[p] = alpha;
  out_depth[p] = depth;
  out_t[p] = transmittance;
  out_n[p] = static_cast<int32_t>(visited);
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(kFullMask, v, offset);
  return v;
}

// Per-Gaussian gradient outputs, in the order of Splat's fields.
template <typename T>
struct SplatGrads {
  T* means2d;
  T* conics;
  T* colors;
  T* opacities;
  T* depths;
};

template <typename T>
__global__ void __launch_bounds__(kMaxTileSize * kMaxTileSize)
    rasterize_bwd_kernel(const SplatInputs<T> inputs, const int64_t* __restrict__ offsets,
                         const int64_t* __restrict__ ids, int64_t width, int64_t height,
                         int64_t tile_size, int64_t tiles_x, const T* __restrict__ grad_rgb,
                         const T* __restrict__ grad_alpha, const T* __restrict__ grad_depth,
                         const T* __restrict__ final_t,
                         const int32_t* __restrict__ n_visited, const SplatGrads<T> out) {
  __shared__ Splat<T> batch[kBatch];
  __shared__ int64_t batch_ids[kBatch];
  __shared__ int max_visited;
  const int64_t tile = blockIdx.x;
  const int tid = threadIdx.x, n_threads = blockDim.x, lane = tid & 31;
  const TilePixel pixel = tile_pixel(tile, tiles_x, tile_size, width, height);
  const T px = static_cast<T>(pixel.x) + T(0.5), py = static_cast<T>(pixel.y) + T(0.5);
  const int64_t begin = offsets[tile];

  int32_t visited = 0;
  const T no_grad[3] = {T(0), T(0), T(0)};
  BackwardPixel<T> state = backward_pixel(T(1), no_grad, T(0), T(0));
  if (pixel.inside) {
    const int64_t p = pixel.y * width + pixel.x;
    visited = n_visited[p];
    state = backward_pixel(final_t[p], grad_rgb + 3 * p, grad_alpha[p], grad_depth[p]);
  }
  if (tid == 0) max_visited = 0;
  __syncthreads();
  if (visited > 0) atomicMax(&max_visited, visited);
  __syncthreads();
  const int64_t stop_all = max_visited;

  // Batches [start, stop) from the back; the bounds are the same for the whole block.
  for (int64_t stop = stop_all; stop > 0; stop -= kBatch) {
    const int64_t start = stop > kBatch ? stop - kBatch : 0;
    const int n_batch = static_cast<int>(stop - start);
    __syncthreads();  // every thread has finished the previous batch
    for (int j = tid; j < n_batch; j += n_threads) {
      const int64_t g = ids[begin + start + j];
      batch_ids[j] = g;
      batch[j] = inputs[g];
    }
    __syncthreads();
    // Every thread of the block walks every j, so a warp's lanes meet each splat together.
    for (int j = n_batch - 1; j >= 0; --j) {
      T grad[kSplatGrads];
      for (int c = 0; c < kSplatGrads; ++c) grad[c] = T(0);
      bool used = start + j < visited;
      if (used) {
        const Splat<T>& s = batch[j];
        T dx, dy, power;
        const T a = splat_alpha(s, px, py, dx, dy, power);
        used = !(a < T(kAlphaMin));
        if (used) backward_step(s, dx, dy, power, a, state, grad);
      }
      if (!__any_sync(kFullMask, used)) continue;  // warp-uniform
      for (int c = 0; c < kSplatGrads; ++c) grad[c] = warp_sum(grad[c]);
      if (lane == 0) {
        const int64_t g = batch_ids[j];
        T* targets[kSplatGrads] = {out.means2d + 2 * g,     out.means2d + 2 * g + 1,
                                   out.conics + 3 * g,      out.conics + 3 * g + 1,
                                   out.conics + 3 * g + 2,  out.opacities + g,
                                   out.colors + 3 * g,      out.colors + 3 * g + 1,
                                   out.colors + 3 * g + 2,  out.depths + g};
        for (int c = 0; c < kSplatGrads; ++c)
          if (grad[c] != T(0)) atomicAdd(targets[c], grad[c]);
      }
    }
  }
}

// Threads of one tile's block: its pixels, rounded up to whole warps.
unsigned int tile_threads(int64_t tile_size) {
  return static_cast<unsigned int>((tile_size * tile_size + 31) / 32 * 32);
}

void check_cuda_tile_size(int64_t tile_size) {
  TORCH_CHECK_VALUE(tile_size <= kMaxTileSize, "CUDA rasterization takes tiles of up to ",
                    kMaxTileSize, " pixels, got tile_size ", tile_size);
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_fwd_cuda(
    const Tensor& means2d, const Tensor& conics, const Tensor& colors, const Tensor& opacities,
    const Tensor& depths, const Tensor& tile_offsets, const Tensor& gaussian_ids, int64_t width,
    int64_t height, int64_t tile_size) {
  check_splat_inputs(means2d, conics, colors, opacities, depths);
  check_image_size(width, height, tile_size);
  check_cuda_tile_size(tile_size);
  const int64_t tiles_x = tiles_along(width, tile_size);
  const int64_t n_tiles = tiles_x * tiles_along(height, tile_size);
  check_tiles(tile_offsets, gaussian_ids, means2d, n_tiles);
  TORCH_CHECK_VALUE(n_tiles < INT32_MAX, "CUDA rasterization takes fewer than 2^31 tiles");
  const c10::cuda::CUDAGuard guard(means2d.device());
  const auto opts = means2d.options();
  Tensor rgb = at::empty({height, width, 3}, opts);
  Tensor alpha = at::empty({height, width}, opts);
  Tensor depth = at::empty({height, width}, opts);
  Tensor transmittance = at::empty({height, width}, opts);
  Tensor n_visited = at::empty({height, width}, opts.dtype(at::kInt));
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "gaussians_rasterize_fwd_cuda", [&] {
    const auto inputs = splat_inputs<scalar_t>(means2d, conics, colors, opacities, depths);
    rasterize_fwd_kernel<scalar_t>
        <<<static_cast<unsigned int>(n_tiles), tile_threads(tile_size), 0, current_stream()>>>(
            inputs, tile_offsets.data_ptr<int64_t>(), gaussian_ids.data_ptr<int64_t>(), width,
            height, tile_size, tiles_x, rgb.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>(),
            depth.data_ptr<scalar_t>(), transmittance.data_ptr<scalar_t>(),
            n_visited.data_ptr<int32_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {rgb, alpha, depth, transmittance, n_visited};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rasterize_bwd_cuda(
    const Tensor& grad_rgb, const Tensor& grad_alpha, const Tensor& grad_depth,
    const Tensor& means2d, const Tensor& conics, const Tensor& colors, const Tensor& opacities,
    const Tensor& depths, const Tensor& tile_offsets, const Tensor& gaussian_ids,
    const Tensor& transmittance, const Tensor& n_visited, int64_t width, int64_t height,
    int64_t tile_size) {
  check_splat_inputs(means2d, conics, colors, opacities, depths);
  check_image_size(width, height, tile_size);
  check_cuda_tile_size(tile_size);
  const int64_t tiles_x = tiles_along(width, tile_size);
  const int64_t n_tiles = tiles_x * tiles_along(height, tile_size);
  check_tiles(tile_offsets, gaussian_ids, means2d, n_tiles);
  TORCH_CHECK_VALUE(n_tiles < INT32_MAX, "CUDA rasterization takes fewer than 2^31 tiles");
  for (const Tensor* t : {&grad_rgb, &grad_alpha, &grad_depth, &transmittance}) {
    check_float(*t, "pixel tensors", means2d);
    TORCH_CHECK_VALUE(t->numel() == height * width * (t == &grad_rgb ? 3 : 1),
                      "pixel tensors must match the image size ", height, "x", width);
  }
  TORCH_CHECK_VALUE(n_visited.scalar_type() == at::kInt && n_visited.is_contiguous() &&
                        n_visited.numel() == height * width,
                    "n_visited must be contiguous int32 [H,W]");
  TORCH_CHECK_VALUE(n_visited.device() == means2d.device(), "n_visited must be on device ",
                    means2d.device(), ", got ", n_visited.device());
  const c10::cuda::CUDAGuard guard(means2d.device());
  const int64_t n = means2d.size(0);
  const auto opts = means2d.options();
  Tensor g_means2d = at::zeros({n, 2}, opts);
  Tensor g_conics = at::zeros({n, 3}, opts);
  Tensor g_colors = at::zeros({n, 3}, opts);
  Tensor g_opacities = at::zeros({n}, opts);
  Tensor g_depths = at::zeros({n}, opts);
  if (gaussian_ids.numel() == 0) return {g_means2d, g_conics, g_colors, g_opacities, g_depths};
  AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "gaussians_rasterize_bwd_cuda", [&] {
    const auto inputs = splat_inputs<scalar_t>(means2d, conics, colors, opacities, depths);
    const SplatGrads<scalar_t> out = {
        g_means2d.data_ptr<scalar_t>(), g_conics.data_ptr<scalar_t>(),
        g_colors.data_ptr<scalar_t>(), g_opacities.data_ptr<scalar_t>(),
        g_depths.data_ptr<scalar_t>()};
    rasterize_bwd_kernel<scalar_t>
        <<<static_cast<unsigned int>(n_tiles), tile_threads(tile_size), 0, current_stream()>>>(
            inputs, tile_offsets.data_ptr<int64_t>(), gaussian_ids.data_ptr<int64_t>(), width,
            height, tile_size, tiles_x, grad_rgb.data_ptr<scalar_t>(),
            grad_alpha.data_ptr<scalar_t>(), grad_depth.data_ptr<scalar_t>(),
            transmittance.data_ptr<scalar_t>(), n_visited.data_ptr<int32_t>(), out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {g_means2d, g_conics, g_colors, g_opacities, g_depths};
}

}  // namespace
}  // namespace gaussians
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CUDA, m) {
  m.impl("gaussians_project_fwd", &mp3d::gaussians::project_fwd_cuda);
  m.impl("gaussians_project_bwd", &mp3d::gaussians::project_bwd_cuda);
  m.impl("gaussians_sh_fwd", &mp3d::gaussians::sh_fwd_cuda);
  m.impl("gaussians_sh_bwd", &mp3d::gaussians::sh_bwd_cuda);
  m.impl("gaussians_tile_bin", &mp3d::gaussians::tile_bin_cuda);
  m.impl("gaussians_rasterize_fwd", &mp3d::gaussians::rasterize_fwd_cuda);
  m.impl("gaussians_rasterize_bwd", &mp3d::gaussians::rasterize_bwd_cuda);
}
