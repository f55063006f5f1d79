// CUDA kernels for packed volume rendering: one thread per ray.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "volume_rendering_host.h"

namespace mp3d {
namespace volume_rendering {
namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void forward_kernel(const ForwardArgs<scalar_t> args, int64_t n_rays) {
  const int64_t ray = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray < n_rays) render_ray_forward(args, ray);
}

template <typename scalar_t>
__global__ void backward_kernel(const BackwardArgs<scalar_t> args, int64_t n_rays) {
  const int64_t ray = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (ray < n_rays) render_ray_backward(args, ray);
}

inline unsigned int n_blocks(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> forward_cuda(const Tensor& sigmas,
                                                        const c10::optional<Tensor>& rgbs,
                                                        const Tensor& t_starts,
                                                        const Tensor& t_ends,
                                                        const Tensor& offsets,
                                                        double early_stop_eps) {
  check_inputs(sigmas, rgbs, t_starts, t_ends, offsets);
  const c10::cuda::CUDAGuard guard(sigmas.device());
  const int64_t n_rays = offsets.numel() - 1;
  auto out = allocate_forward(sigmas, rgbs.has_value(), n_rays);
  if (n_rays == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "volume_render_fwd_cuda", [&] {
    const auto args = forward_args<scalar_t>(sigmas, rgbs, t_starts, t_ends, offsets,
                                             early_stop_eps, out);
    forward_kernel<scalar_t><<<n_blocks(n_rays), kThreads, 0,
                               c10::cuda::getCurrentCUDAStream()>>>(args, n_rays);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> backward_cuda(
    const c10::optional<Tensor>& grad_weights, const c10::optional<Tensor>& grad_rgb,
    const c10::optional<Tensor>& grad_opacity, const c10::optional<Tensor>& grad_depth,
    const Tensor& sigmas, const c10::optional<Tensor>& rgbs, const Tensor& t_starts,
    const Tensor& t_ends, const Tensor& offsets, const Tensor& weights, double early_stop_eps,
    bool t_grads) {
  check_inputs(sigmas, rgbs, t_starts, t_ends, offsets);
  const c10::cuda::CUDAGuard guard(sigmas.device());
  const int64_t n_rays = offsets.numel() - 1;
  check_grads(sigmas, grad_weights, grad_rgb, grad_opacity, grad_depth, weights, n_rays);
  auto out = allocate_backward(sigmas, rgbs.has_value(), t_grads);
  if (n_rays == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(sigmas.scalar_type(), "volume_render_bwd_cuda", [&] {
    const auto args = backward_args<scalar_t>(grad_weights, grad_rgb, grad_opacity, grad_depth,
                                              sigmas, rgbs, t_starts, t_ends, offsets, weights,
                                              early_stop_eps, t_grads, out);
    backward_kernel<scalar_t><<<n_blocks(n_rays), kThreads, 0,
                                c10::cuda::getCurrentCUDAStream()>>>(args, n_rays);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace
}  // namespace volume_rendering
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CUDA, m) {
  m.impl("volume_render_fwd", &mp3d::volume_rendering::forward_cuda);
  m.impl("volume_render_bwd", &mp3d::volume_rendering::backward_cuda);
}
