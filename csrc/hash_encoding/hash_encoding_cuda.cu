// CUDA kernels for the multiresolution hash encoding: one thread per (point, level).
//
// The level layout travels as a kernel argument, up to kLevelsPerLaunch levels per launch
// (blockIdx.y picks the level), so no host-to-device copy is needed for it and any number
// of levels works. The backward and double backward passes scatter with atomicAdd; the
// double backward's grad_features entries for a (point, level) belong to one thread.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "hash_encoding_host.h"

namespace mp3d {
namespace hash_encoding {
namespace {

constexpr int kThreads = 256;
constexpr int kLevelsPerLaunch = 32;

// Consecutive levels [first, first + count) of the layout.
struct LevelChunk {
  Level levels[kLevelsPerLaunch];
  int64_t first;
  int count;
};

template <typename scalar_t>
__global__ void forward_kernel(const ForwardArgs<scalar_t> args, const LevelChunk chunk,
                               int64_t n_points) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < n_points) encode(args, chunk.levels[blockIdx.y], chunk.first + blockIdx.y, n);
}

template <typename scalar_t>
__global__ void backward_kernel(const BackwardArgs<scalar_t> args, const LevelChunk chunk,
                                int64_t n_points) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= n_points) return;
  const Level& level = chunk.levels[blockIdx.y];
  const int64_t l = chunk.first + blockIdx.y;
  scatter_embedding_grad(args, level, l, n);
  if (args.grad_points == nullptr) return;
  scalar_t grad[3] = {0, 0, 0};
  add_level_point_grad(args, level, l, n, grad);
  for (int axis = 0; axis < 3; ++axis) atomicAdd(args.grad_points + 3 * n + axis, grad[axis]);
}

template <typename scalar_t>
__global__ void double_backward_kernel(const DoubleBackwardArgs<scalar_t> args,
                                       const LevelChunk chunk, int64_t n_points) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= n_points) return;
  const Level& level = chunk.levels[blockIdx.y];
  const int64_t l = chunk.first + blockIdx.y;
  if (args.grad_embeddings != nullptr) scatter_double_backward_embedding_grad(args, level, l, n);
  if (args.grad_grad_features == nullptr && args.grad_points == nullptr) return;
  scalar_t grad[3] = {0, 0, 0};
  double_backward_point(args, level, l, n, args.grad_points != nullptr ? grad : nullptr);
  if (args.grad_points == nullptr) return;
  for (int axis = 0; axis < 3; ++axis) atomicAdd(args.grad_points + 3 * n + axis, grad[axis]);
}

LevelChunk chunk_at(const std::vector<Level>& levels, size_t first) {
  LevelChunk chunk{};
  chunk.first = static_cast<int64_t>(first);
  chunk.count = static_cast<int>(std::min<size_t>(kLevelsPerLaunch, levels.size() - first));
  std::copy_n(levels.begin() + first, chunk.count, chunk.levels);
  return chunk;
}

// Runs launch(grid, chunk) once per chunk of levels, all on the current stream.
template <typename Launch>
void for_each_chunk(const std::vector<Level>& levels, int64_t n_points, Launch launch) {
  const unsigned int blocks = static_cast<unsigned int>((n_points + kThreads - 1) / kThreads);
  for (size_t first = 0; first < levels.size(); first += kLevelsPerLaunch) {
    const LevelChunk chunk = chunk_at(levels, first);
    launch(dim3(blocks, static_cast<unsigned int>(chunk.count)), chunk);
  }
}

Tensor forward_cuda(const Tensor& points, const Tensor& embeddings, const Tensor& resolutions,
                    const Tensor& offsets) {
  check_inputs(points, embeddings);
  const c10::cuda::CUDAGuard guard(points.device());
  const std::vector<Level> levels = read_levels(resolutions, offsets, embeddings.size(0));
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  const int64_t n_points = points.size(0);
  Tensor features = at::empty({n_points, n_levels * embeddings.size(1)}, points.options());
  if (n_points == 0) return features;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_fwd_cuda", [&] {
    const auto args = forward_args<scalar_t>(points, embeddings, n_levels, features);
    for_each_chunk(levels, n_points, [&](dim3 grid, const LevelChunk& chunk) {
      forward_kernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          args, chunk, n_points);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return features;
}

std::tuple<Tensor, Tensor> backward_cuda(const Tensor& grad_features, const Tensor& points,
                                         const Tensor& embeddings, const Tensor& resolutions,
                                         const Tensor& offsets, bool points_grad) {
  check_inputs(points, embeddings);
  const c10::cuda::CUDAGuard guard(points.device());
  const std::vector<Level> levels = read_levels(resolutions, offsets, embeddings.size(0));
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  const int64_t n_points = points.size(0);
  check_grad_features(grad_features, points, n_levels * embeddings.size(1));
  auto out = allocate_backward(points, embeddings, points_grad);
  if (n_points == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_bwd_cuda", [&] {
    const auto args =
        backward_args<scalar_t>(grad_features, points, embeddings, n_levels, points_grad, out);
    for_each_chunk(levels, n_points, [&](dim3 grid, const LevelChunk& chunk) {
      backward_kernel<scalar_t><<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
          args, chunk, n_points);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> double_backward_cuda(
    const Tensor& grad_features, const Tensor& points, const Tensor& embeddings,
    const Tensor& resolutions, const Tensor& offsets, const c10::optional<Tensor>& gg_embeddings,
    const c10::optional<Tensor>& gg_points, bool grad_features_grad, bool points_grad,
    bool embeddings_grad) {
  check_inputs(points, embeddings);
  const c10::cuda::CUDAGuard guard(points.device());
  const std::vector<Level> levels = read_levels(resolutions, offsets, embeddings.size(0));
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  const int64_t n_points = points.size(0);
  const int64_t n_columns = n_levels * embeddings.size(1);
  check_grad_features(grad_features, points, n_columns);
  const DoubleBackwardPlan plan =
      plan_double_backward(points, embeddings, gg_embeddings, gg_points, grad_features_grad,
                           points_grad, embeddings_grad);
  auto out = allocate_double_backward(points, embeddings, n_columns, grad_features_grad,
                                      points_grad, embeddings_grad);
  if (n_points == 0 || !plan.any()) return out;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_bwd_bwd_cuda", [&] {
    const auto args =
        double_backward_args<scalar_t>(grad_features, points, embeddings, n_levels, plan, out);
    for_each_chunk(levels, n_points, [&](dim3 grid, const LevelChunk& chunk) {
      double_backward_kernel<scalar_t>
          <<<grid, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(args, chunk, n_points);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

}  // namespace
}  // namespace hash_encoding
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CUDA, m) {
  m.impl("hash_encode_fwd", &mp3d::hash_encoding::forward_cuda);
  m.impl("hash_encode_bwd", &mp3d::hash_encoding::backward_cuda);
  m.impl("hash_encode_bwd_bwd", &mp3d::hash_encoding::double_backward_cuda);
}
