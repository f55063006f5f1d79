// C++ CPU kernels for packed volume rendering: one task per ray, parallel over rays.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "volume_rendering_host.h"

namespace mp3d {
namespace volume_rendering {
namespace {

constexpr int64_t kRayGrain = 256;

std::tuple<Tensor, Tensor, Tensor, Tensor> forward_cpu(const Tensor& sigmas,
                                                       const c10::optional<Tensor>& rgbs,
                                                       const Tensor& t_starts,
                                                       const Tensor& t_ends,
                                                       const Tensor& offsets,
                                                       double early_stop_eps) {
  check_inputs(sigmas, rgbs, t_starts, t_ends, offsets);
  const int64_t n_rays = offsets.numel() - 1;
  auto out = allocate_forward(sigmas, rgbs.has_value(), n_rays);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "volume_render_fwd_cpu", [&] {
    const auto args = forward_args<scalar_t>(sigmas, rgbs, t_starts, t_ends, offsets,
                                             early_stop_eps, out);
    at::parallel_for(0, n_rays, kRayGrain, [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) render_ray_forward(args, ray);
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> backward_cpu(
    const c10::optional<Tensor>& grad_weights, const c10::optional<Tensor>& grad_rgb,
    const c10::optional<Tensor>& grad_opacity, const c10::optional<Tensor>& grad_depth,
    const Tensor& sigmas, const c10::optional<Tensor>& rgbs, const Tensor& t_starts,
    const Tensor& t_ends, const Tensor& offsets, const Tensor& weights, double early_stop_eps,
    bool t_grads) {
  check_inputs(sigmas, rgbs, t_starts, t_ends, offsets);
  const int64_t n_rays = offsets.numel() - 1;
  check_grads(sigmas, grad_weights, grad_rgb, grad_opacity, grad_depth, weights, n_rays);
  auto out = allocate_backward(sigmas, rgbs.has_value(), t_grads);
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "volume_render_bwd_cpu", [&] {
    const auto args = backward_args<scalar_t>(grad_weights, grad_rgb, grad_opacity, grad_depth,
                                              sigmas, rgbs, t_starts, t_ends, offsets, weights,
                                              early_stop_eps, t_grads, out);
    at::parallel_for(0, n_rays, kRayGrain, [&](int64_t begin, int64_t end) {
      for (int64_t ray = begin; ray < end; ++ray) render_ray_backward(args, ray);
    });
  });
  return out;
}

}  // namespace
}  // namespace volume_rendering
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) {
  m.impl("volume_render_fwd", &mp3d::volume_rendering::forward_cpu);
  m.impl("volume_render_bwd", &mp3d::volume_rendering::backward_cpu);
}
