// C++ CPU kernels for the multiresolution hash encoding.
//
// Forward and the points gradient run in parallel over points, as do the double backward's
// grad_features and points gradients. The embeddings gradients (of the backward and of the
// double backward) run in parallel over levels: each level owns a disjoint range of rows,
// so the scatter-add is race-free (and deterministic) without atomics or per-thread copies
// of the table.
// Every loop sweeps one level at a time, so that level's table stays in cache; going
// through all levels per point instead was 3x slower for a 16-level, 46 MiB table.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "hash_encoding_host.h"

namespace mp3d {
namespace hash_encoding {
namespace {

constexpr int64_t kPointGrain = 64;
// (point, level) pairs per task below which spreading levels over threads costs more than
// it saves.
constexpr int64_t kMinPairsPerTask = 1 << 15;

Tensor forward_cpu(const Tensor& points, const Tensor& embeddings, const Tensor& resolutions,
                   const Tensor& offsets) {
  check_inputs(points, embeddings);
  const std::vector<Level> levels = read_levels(resolutions, offsets, embeddings.size(0));
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  Tensor features = at::empty({points.size(0), n_levels * embeddings.size(1)}, points.options());
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_fwd_cpu", [&] {
    const auto args = forward_args<scalar_t>(points, embeddings, n_levels, features);
    at::parallel_for(0, points.size(0), kPointGrain, [&](int64_t begin, int64_t end) {
      for (int64_t l = 0; l < n_levels; ++l)
        for (int64_t n = begin; n < end; ++n) encode(args, levels[l], l, n);
    });
  });
  return features;
}

template <typename scalar_t>
void embedding_grad_cpu(const BackwardArgs<scalar_t>& args, const std::vector<Level>& levels,
                        int64_t n_points) {
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  const int64_t grain = std::max<int64_t>(1, kMinPairsPerTask / std::max<int64_t>(n_points, 1));
  at::parallel_for(0, n_levels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t l = begin; l < end; ++l)
      for (int64_t n = 0; n < n_points; ++n) scatter_embedding_grad(args, levels[l], l, n);
  });
}

template <typename scalar_t>
void point_grad_cpu(const BackwardArgs<scalar_t>& args, const std::vector<Level>& levels,
                    int64_t n_points) {
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  at::parallel_for(0, n_points, kPointGrain, [&](int64_t begin, int64_t end) {
    for (int64_t l = 0; l < n_levels; ++l)
      for (int64_t n = begin; n < end; ++n)
        add_level_point_grad(args, levels[l], l, n, args.grad_points + 3 * n);
  });
}

std::tuple<Tensor, Tensor> backward_cpu(const Tensor& grad_features, const Tensor& points,
                                        const Tensor& embeddings, const Tensor& resolutions,
                                        const Tensor& offsets, bool points_grad) {
  check_inputs(points, embeddings);
  const std::vector<Level> levels = read_levels(resolutions, offsets, embeddings.size(0));
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  check_grad_features(grad_features, points, n_levels * embeddings.size(1));
  auto out = allocate_backward(points, embeddings, points_grad);
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_bwd_cpu", [&] {
    const auto args =
        backward_args<scalar_t>(grad_features, points, embeddings, n_levels, points_grad, out);
    embedding_grad_cpu(args, levels, points.size(0));
    if (points_grad) point_grad_cpu(args, levels, points.size(0));
  });
  return out;
}

template <typename scalar_t>
void double_backward_points_cpu(const DoubleBackwardArgs<scalar_t>& args,
                                const std::vector<Level>& levels, int64_t n_points) {
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  at::parallel_for(0, n_points, kPointGrain, [&](int64_t begin, int64_t end) {
    for (int64_t l = 0; l < n_levels; ++l)
      for (int64_t n = begin; n < end; ++n)
        double_backward_point(args, levels[l], l, n,
                              args.grad_points ? args.grad_points + 3 * n : nullptr);
  });
}

template <typename scalar_t>
void double_backward_embeddings_cpu(const DoubleBackwardArgs<scalar_t>& args,
                                    const std::vector<Level>& levels, int64_t n_points) {
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  const int64_t grain = std::max<int64_t>(1, kMinPairsPerTask / std::max<int64_t>(n_points, 1));
  at::parallel_for(0, n_levels, grain, [&](int64_t begin, int64_t end) {
    for (int64_t l = begin; l < end; ++l)
      for (int64_t n = 0; n < n_points; ++n)
        scatter_double_backward_embedding_grad(args, levels[l], l, n);
  });
}

std::tuple<Tensor, Tensor, Tensor> double_backward_cpu(
    const Tensor& grad_features, const Tensor& points, const Tensor& embeddings,
    const Tensor& resolutions, const Tensor& offsets, const c10::optional<Tensor>& gg_embeddings,
    const c10::optional<Tensor>& gg_points, bool grad_features_grad, bool points_grad,
    bool embeddings_grad) {
  check_inputs(points, embeddings);
  const std::vector<Level> levels = read_levels(resolutions, offsets, embeddings.size(0));
  const int64_t n_levels = static_cast<int64_t>(levels.size());
  const int64_t n_columns = n_levels * embeddings.size(1);
  check_grad_features(grad_features, points, n_columns);
  const DoubleBackwardPlan plan =
      plan_double_backward(points, embeddings, gg_embeddings, gg_points, grad_features_grad,
                           points_grad, embeddings_grad);
  auto out = allocate_double_backward(points, embeddings, n_columns, grad_features_grad,
                                      points_grad, embeddings_grad);
  if (!plan.any()) return out;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "hash_encode_bwd_bwd_cpu", [&] {
    const auto args =
        double_backward_args<scalar_t>(grad_features, points, embeddings, n_levels, plan, out);
    if (plan.grad_features || plan.points) double_backward_points_cpu(args, levels, points.size(0));
    if (plan.embeddings) double_backward_embeddings_cpu(args, levels, points.size(0));
  });
  return out;
}

}  // namespace
}  // namespace hash_encoding
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) {
  m.impl("hash_encode_fwd", &mp3d::hash_encoding::forward_cpu);
  m.impl("hash_encode_bwd", &mp3d::hash_encoding::backward_cpu);
  m.impl("hash_encode_bwd_bwd", &mp3d::hash_encoding::double_backward_cpu);
}
