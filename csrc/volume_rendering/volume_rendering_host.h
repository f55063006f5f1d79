// Allocation and argument plumbing shared by the CPU and CUDA launchers.
#pragma once

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Optional.h>

#include <tuple>

#include "volume_rendering.h"

namespace mp3d {
namespace volume_rendering {

using at::Tensor;

inline void check_inputs(const Tensor& sigmas, const c10::optional<Tensor>& rgbs,
                         const Tensor& t_starts, const Tensor& t_ends, const Tensor& offsets) {
  MP3D_CHECK_CONTIGUOUS(sigmas);
  MP3D_CHECK_CONTIGUOUS(t_starts);
  MP3D_CHECK_CONTIGUOUS(t_ends);
  MP3D_CHECK_CONTIGUOUS(offsets);
  MP3D_CHECK_DEVICE(t_starts, sigmas);
  MP3D_CHECK_DEVICE(t_ends, sigmas);
  MP3D_CHECK_DEVICE(offsets, sigmas);
  MP3D_CHECK_DTYPE(t_starts, sigmas.scalar_type());
  MP3D_CHECK_DTYPE(t_ends, sigmas.scalar_type());
  MP3D_CHECK_DTYPE(offsets, at::kLong);
  TORCH_CHECK_VALUE(sigmas.dim() == 1, "sigmas must be 1-D, got ", sigmas.sizes());
  TORCH_CHECK_VALUE(t_starts.numel() == sigmas.numel() && t_ends.numel() == sigmas.numel(),
                    "t_starts and t_ends must have ", sigmas.numel(), " elements");
  TORCH_CHECK_VALUE(offsets.dim() == 1 && offsets.numel() >= 1, "offsets must be 1-D, [R+1]");
  if (rgbs.has_value()) {
    const Tensor& c = *rgbs;
    MP3D_CHECK_CONTIGUOUS(c);
    MP3D_CHECK_DEVICE(c, sigmas);
    MP3D_CHECK_DTYPE(c, sigmas.scalar_type());
    TORCH_CHECK_VALUE(c.dim() == 2 && c.size(0) == sigmas.numel() && c.size(1) == 3,
                      "rgbs must have shape [", sigmas.numel(), ", 3], got ", c.sizes());
  }
}

// Outputs of the forward pass: weights [S], rgb [R,3] (or [0,3]), opacity [R], depth [R].
inline std::tuple<Tensor, Tensor, Tensor, Tensor> allocate_forward(
    const Tensor& sigmas, bool with_rgb, int64_t n_rays) {
  const auto opts = sigmas.options();
  return {at::empty({sigmas.numel()}, opts), at::empty({with_rgb ? n_rays : 0, 3}, opts),
          at::empty({n_rays}, opts), at::empty({n_rays}, opts)};
}

template <typename scalar_t>
ForwardArgs<scalar_t> forward_args(const Tensor& sigmas, const c10::optional<Tensor>& rgbs,
                                   const Tensor& t_starts, const Tensor& t_ends,
                                   const Tensor& offsets, double early_stop_eps,
                                   const std::tuple<Tensor, Tensor, Tensor, Tensor>& out) {
  ForwardArgs<scalar_t> a;
  a.sigmas = sigmas.data_ptr<scalar_t>();
  a.rgbs = rgbs.has_value() ? rgbs->data_ptr<scalar_t>() : nullptr;
  a.t_starts = t_starts.data_ptr<scalar_t>();
  a.t_ends = t_ends.data_ptr<scalar_t>();
  a.offsets = offsets.data_ptr<int64_t>();
  a.early_stop_eps = static_cast<scalar_t>(early_stop_eps);
  a.weights = std::get<0>(out).data_ptr<scalar_t>();
  a.rgb = rgbs.has_value() ? std::get<1>(out).data_ptr<scalar_t>() : nullptr;
  a.opacity = std::get<2>(out).data_ptr<scalar_t>();
  a.depth = std::get<3>(out).data_ptr<scalar_t>();
  return a;
}

inline const Tensor* defined_or_null(const c10::optional<Tensor>& t) {
  return t.has_value() && t->defined() ? &*t : nullptr;
}

template <typename scalar_t>
const scalar_t* ptr_or_null(const c10::optional<Tensor>& t) {
  const Tensor* p = defined_or_null(t);
  return p == nullptr ? nullptr : p->data_ptr<scalar_t>();
}

// Outputs of the backward pass: grads of sigmas [S], rgbs ([S,3] or [0,3]), t_starts and
// t_ends ([S] each, or [0] when not asked for).
inline std::tuple<Tensor, Tensor, Tensor, Tensor> allocate_backward(const Tensor& sigmas,
                                                                    bool with_rgb,
                                                                    bool with_t) {
  const auto opts = sigmas.options();
  const int64_t n = sigmas.numel();
  return {at::empty({n}, opts), at::empty({with_rgb ? n : 0, 3}, opts),
          at::empty({with_t ? n : 0}, opts), at::empty({with_t ? n : 0}, opts)};
}

template <typename scalar_t>
BackwardArgs<scalar_t> backward_args(
    const c10::optional<Tensor>& grad_weights, const c10::optional<Tensor>& grad_rgb,
    const c10::optional<Tensor>& grad_opacity, const c10::optional<Tensor>& grad_depth,
    const Tensor& sigmas, const c10::optional<Tensor>& rgbs, const Tensor& t_starts,
    const Tensor& t_ends, const Tensor& offsets, const Tensor& weights, double early_stop_eps,
    bool with_t, const std::tuple<Tensor, Tensor, Tensor, Tensor>& out) {
  BackwardArgs<scalar_t> a;
  a.grad_weights = ptr_or_null<scalar_t>(grad_weights);
  a.grad_rgb = ptr_or_null<scalar_t>(grad_rgb);
  a.grad_opacity = ptr_or_null<scalar_t>(grad_opacity);
  a.grad_depth = ptr_or_null<scalar_t>(grad_depth);
  a.sigmas = sigmas.data_ptr<scalar_t>();
  a.rgbs = rgbs.has_value() ? rgbs->data_ptr<scalar_t>() : nullptr;
  a.t_starts = t_starts.data_ptr<scalar_t>();
  a.t_ends = t_ends.data_ptr<scalar_t>();
  a.offsets = offsets.data_ptr<int64_t>();
  a.weights = weights.data_ptr<scalar_t>();
  a.early_stop_eps = static_cast<scalar_t>(early_stop_eps);
  a.grad_sigmas = std::get<0>(out).data_ptr<scalar_t>();
  a.grad_rgbs = rgbs.has_value() ? std::get<1>(out).data_ptr<scalar_t>() : nullptr;
  a.grad_t_starts = with_t ? std::get<2>(out).data_ptr<scalar_t>() : nullptr;
  a.grad_t_ends = with_t ? std::get<3>(out).data_ptr<scalar_t>() : nullptr;
  return a;
}

inline void check_grads(const Tensor& sigmas, const c10::optional<Tensor>& grad_weights,
                        const c10::optional<Tensor>& grad_rgb,
                        const c10::optional<Tensor>& grad_opacity,
                        const c10::optional<Tensor>& grad_depth, const Tensor& weights,
                        int64_t n_rays) {
  MP3D_CHECK_CONTIGUOUS(weights);
  TORCH_CHECK_VALUE(weights.numel() == sigmas.numel(), "weights must have ", sigmas.numel(),
                    " elements");
  const c10::optional<Tensor>* grads[] = {&grad_weights, &grad_rgb, &grad_opacity, &grad_depth};
  const int64_t sizes[] = {sigmas.numel(), 3 * n_rays, n_rays, n_rays};
  for (int k = 0; k < 4; ++k) {
    const Tensor* g = defined_or_null(*grads[k]);
    if (g == nullptr) continue;
    MP3D_CHECK_CONTIGUOUS(*g);
    MP3D_CHECK_DEVICE(*g, sigmas);
    MP3D_CHECK_DTYPE(*g, sigmas.scalar_type());
    TORCH_CHECK_VALUE(g->numel() == sizes[k], "gradient ", k, " must have ", sizes[k],
                      " elements, got ", g->numel());
  }
}

}  // namespace volume_rendering
}  // namespace mp3d
