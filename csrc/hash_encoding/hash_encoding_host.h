// Input checks, level layout and argument plumbing shared by the CPU and CUDA launchers.
#pragma once

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Optional.h>

#include <tuple>
#include <vector>

#include "hash_encoding.h"

namespace mp3d {
namespace hash_encoding {

using at::Tensor;

inline void check_inputs(const Tensor& points, const Tensor& embeddings) {
  MP3D_CHECK_CONTIGUOUS(points);
  MP3D_CHECK_CONTIGUOUS(embeddings);
  MP3D_CHECK_DEVICE(embeddings, points);
  MP3D_CHECK_DTYPE(embeddings, points.scalar_type());
  TORCH_CHECK_VALUE(points.dim() == 2 && points.size(1) == 3,
                    "points must have shape [N, 3], got ", points.sizes());
  TORCH_CHECK_VALUE(embeddings.dim() == 2, "embeddings must have shape [E, F], got ",
                    embeddings.sizes());
}

inline void check_layout_tensor(const Tensor& t, const char* name) {
  TORCH_CHECK_VALUE(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK_VALUE(t.scalar_type() == at::kLong, name, " must have dtype int64, got ",
                    t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == 1 && t.is_contiguous(), name,
                    " must be 1-D and contiguous, got ", t.sizes());
}

// The levels described by resolutions [L] and offsets [L+1], checked against n_rows table rows.
inline std::vector<Level> read_levels(const Tensor& resolutions, const Tensor& offsets,
                                      int64_t n_rows) {
  check_layout_tensor(resolutions, "resolutions");
  check_layout_tensor(offsets, "offsets");
  const int64_t n_levels = resolutions.numel();
  TORCH_CHECK_VALUE(n_levels >= 1 && offsets.numel() == n_levels + 1,
                    "need L >= 1 resolutions and L + 1 offsets, got ", n_levels, " and ",
                    offsets.numel());
  const int64_t* res = resolutions.data_ptr<int64_t>();
  const int64_t* off = offsets.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(off[0] == 0 && off[n_levels] == n_rows, "offsets must run from 0 to ",
                    n_rows, ", got ", off[0], " to ", off[n_levels]);
  std::vector<Level> levels(n_levels);
  for (int64_t l = 0; l < n_levels; ++l) {
    const int64_t size = off[l + 1] - off[l];
    TORCH_CHECK_VALUE(res[l] >= 1, "resolutions must be >= 1, got ", res[l], " at level ", l);
    TORCH_CHECK_VALUE(size >= 1, "offsets must increase, got a level of ", size, " rows at ", l);
    levels[l] = Level{off[l], size, res[l], fits_densely(res[l] + 1, size)};
  }
  return levels;
}

inline void check_grad_features(const Tensor& grad_features, const Tensor& points,
                                int64_t n_columns) {
  MP3D_CHECK_CONTIGUOUS(grad_features);
  MP3D_CHECK_DEVICE(grad_features, points);
  MP3D_CHECK_DTYPE(grad_features, points.scalar_type());
  TORCH_CHECK_VALUE(grad_features.dim() == 2 && grad_features.size(0) == points.size(0) &&
                        grad_features.size(1) == n_columns,
                    "grad_features must have shape [", points.size(0), ", ", n_columns,
                    "], got ", grad_features.sizes());
}

template <typename scalar_t>
ForwardArgs<scalar_t> forward_args(const Tensor& points, const Tensor& embeddings,
                                   int64_t n_levels, const Tensor& features) {
  return ForwardArgs<scalar_t>{points.data_ptr<scalar_t>(), embeddings.data_ptr<scalar_t>(),
                               embeddings.size(1), n_levels, features.data_ptr<scalar_t>()};
}

// Outputs of the backward pass: grad_embeddings [E,F] (zeros, accumulated into) and
// grad_points [N,3] (zeros), or [0,3] when not asked for.
inline std::tuple<Tensor, Tensor> allocate_backward(const Tensor& points,
                                                    const Tensor& embeddings, bool points_grad) {
  return {at::zeros(embeddings.sizes(), embeddings.options()),
          at::zeros({points_grad ? points.size(0) : 0, 3}, points.options())};
}

template <typename scalar_t>
BackwardArgs<scalar_t> backward_args(const Tensor& grad_features, const Tensor& points,
                                     const Tensor& embeddings, int64_t n_levels,
                                     bool points_grad, const std::tuple<Tensor, Tensor>& out) {
  return BackwardArgs<scalar_t>{
      grad_features.data_ptr<scalar_t>(), points.data_ptr<scalar_t>(),
      embeddings.data_ptr<scalar_t>(),    embeddings.size(1),
      n_levels,                           std::get<0>(out).data_ptr<scalar_t>(),
      points_grad ? std::get<1>(out).data_ptr<scalar_t>() : nullptr};
}

// An incoming gradient of the double backward: absent (nullptr) or of shape [rows, cols].
inline const Tensor* check_incoming(const c10::optional<Tensor>& t, const Tensor& points,
                                    int64_t rows, int64_t cols, const char* name) {
  if (!t.has_value() || !t->defined()) return nullptr;
  TORCH_CHECK_VALUE(t->is_contiguous(), name, " must be contiguous");
  TORCH_CHECK_VALUE(t->device() == points.device(), name, " must be on device ",
                    points.device(), ", got ", t->device());
  TORCH_CHECK_VALUE(t->scalar_type() == points.scalar_type(), name, " must have dtype ",
                    points.scalar_type(), ", got ", t->scalar_type());
  TORCH_CHECK_VALUE(t->dim() == 2 && t->size(0) == rows && t->size(1) == cols, name,
                    " must have shape [", rows, ", ", cols, "], got ", t->sizes());
  return &*t;
}

// What the double backward computes: each output is asked for (grad_*) and has a nonzero
// source (gg_embeddings feeds grad_grad_features and grad_points; gg_points feeds all three).
struct DoubleBackwardPlan {
  const Tensor* gg_embeddings;
  const Tensor* gg_points;
  bool grad_features;
  bool points;
  bool embeddings;
  bool any() const { return grad_features || points || embeddings; }
};

inline DoubleBackwardPlan plan_double_backward(const Tensor& points, const Tensor& embeddings,
                                               const c10::optional<Tensor>& gg_embeddings,
                                               const c10::optional<Tensor>& gg_points,
                                               bool grad_features_grad, bool points_grad,
                                               bool embeddings_grad) {
  DoubleBackwardPlan plan;
  plan.gg_embeddings = check_incoming(gg_embeddings, points, embeddings.size(0),
                                      embeddings.size(1), "gg_embeddings");
  plan.gg_points = check_incoming(gg_points, points, points.size(0), 3, "gg_points");
  const bool either = plan.gg_embeddings != nullptr || plan.gg_points != nullptr;
  plan.grad_features = grad_features_grad && either;
  plan.points = points_grad && either;
  plan.embeddings = embeddings_grad && plan.gg_points != nullptr;
  return plan;
}

// Outputs of the double backward: grad_grad_features [N, L*F], grad_points [N,3] and
// grad_embeddings [E,F], zeros when asked for (a missing source leaves them zero), and with
// no rows when not asked for.
inline std::tuple<Tensor, Tensor, Tensor> allocate_double_backward(
    const Tensor& points, const Tensor& embeddings, int64_t n_columns, bool grad_features_grad,
    bool points_grad, bool embeddings_grad) {
  return {at::zeros({grad_features_grad ? points.size(0) : 0, n_columns}, points.options()),
          at::zeros({points_grad ? points.size(0) : 0, 3}, points.options()),
          at::zeros({embeddings_grad ? embeddings.size(0) : 0, embeddings.size(1)},
                    embeddings.options())};
}

template <typename scalar_t>
DoubleBackwardArgs<scalar_t> double_backward_args(const Tensor& grad_features,
                                                  const Tensor& points, const Tensor& embeddings,
                                                  int64_t n_levels, const DoubleBackwardPlan& plan,
                                                  const std::tuple<Tensor, Tensor, Tensor>& out) {
  return DoubleBackwardArgs<scalar_t>{
      grad_features.data_ptr<scalar_t>(),
      points.data_ptr<scalar_t>(),
      embeddings.data_ptr<scalar_t>(),
      plan.gg_embeddings ? plan.gg_embeddings->data_ptr<scalar_t>() : nullptr,
      plan.gg_points ? plan.gg_points->data_ptr<scalar_t>() : nullptr,
      embeddings.size(1),
      n_levels,
      plan.grad_features ? std::get<0>(out).data_ptr<scalar_t>() : nullptr,
      plan.points ? std::get<1>(out).data_ptr<scalar_t>() : nullptr,
      plan.embeddings ? std::get<2>(out).data_ptr<scalar_t>() : nullptr};
}

}  // namespace hash_encoding
}  // namespace mp3d
