// Checks, allocation and argument plumbing shared by the CPU and CUDA launchers.
#pragma once

#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <tuple>

#include "skinning.h"

namespace mp3d {
namespace skinning {

using at::Tensor;

inline void check_inputs(const Tensor& vertices, const Tensor& weights,
                         const Tensor& transforms) {
  MP3D_CHECK_CONTIGUOUS(vertices);
  MP3D_CHECK_CONTIGUOUS(weights);
  MP3D_CHECK_CONTIGUOUS(transforms);
  MP3D_CHECK_DEVICE(weights, vertices);
  MP3D_CHECK_DEVICE(transforms, vertices);
  TORCH_CHECK_VALUE(vertices.scalar_type() == at::kFloat || vertices.scalar_type() == at::kDouble,
                    "vertices must be float32 or float64, got ", vertices.scalar_type());
  MP3D_CHECK_DTYPE(weights, vertices.scalar_type());
  MP3D_CHECK_DTYPE(transforms, vertices.scalar_type());
  TORCH_CHECK_VALUE(weights.dim() == 2, "weights must have shape [V, J], got ", weights.sizes());
  const int64_t n_vertices = weights.size(0), n_joints = weights.size(1);
  TORCH_CHECK_VALUE(transforms.dim() == 4 && transforms.size(1) == n_joints &&
                        transforms.size(2) == 4 && transforms.size(3) == 4,
                    "transforms must have shape [B, ", n_joints, ", 4, 4], got ",
                    transforms.sizes());
  const int64_t n_batch = transforms.size(0);
  const bool shared = vertices.dim() == 2;
  TORCH_CHECK_VALUE(
      (shared && vertices.size(0) == n_vertices && vertices.size(1) == 3) ||
          (vertices.dim() == 3 && vertices.size(0) == n_batch &&
           vertices.size(1) == n_vertices && vertices.size(2) == 3),
      "vertices must have shape [", n_batch, ", ", n_vertices, ", 3] or [", n_vertices,
      ", 3], got ", vertices.sizes());
}

template <typename scalar_t>
Inputs<scalar_t> inputs(const Tensor& vertices, const Tensor& weights, const Tensor& transforms) {
  Inputs<scalar_t> in;
  in.vertices = vertices.data_ptr<scalar_t>();
  in.weights = weights.data_ptr<scalar_t>();
  in.transforms = transforms.data_ptr<scalar_t>();
  in.n_batch = transforms.size(0);
  in.n_vertices = weights.size(0);
  in.n_joints = weights.size(1);
  in.vertex_batch_stride = vertices.dim() == 2 ? 0 : 3 * in.n_vertices;
  return in;
}

// Posed vertices [B,V,3].
inline Tensor allocate_forward(const Tensor& weights, const Tensor& transforms) {
  return at::empty({transforms.size(0), weights.size(0), 3}, transforms.options());
}

template <typename scalar_t>
ForwardArgs<scalar_t> forward_args(const Tensor& vertices, const Tensor& weights,
                                   const Tensor& transforms, const Tensor& posed) {
  ForwardArgs<scalar_t> a;
  a.in = inputs<scalar_t>(vertices, weights, transforms);
  a.posed = posed.data_ptr<scalar_t>();
  return a;
}

inline void check_grad_posed(const Tensor& grad_posed, const Tensor& weights,
                             const Tensor& transforms) {
  MP3D_CHECK_CONTIGUOUS(grad_posed);
  MP3D_CHECK_DEVICE(grad_posed, transforms);
  MP3D_CHECK_DTYPE(grad_posed, transforms.scalar_type());
  TORCH_CHECK_VALUE(grad_posed.dim() == 3 && grad_posed.size(0) == transforms.size(0) &&
                        grad_posed.size(1) == weights.size(0) && grad_posed.size(2) == 3,
                    "grad_posed must have shape [", transforms.size(0), ", ", weights.size(0),
                    ", 3], got ", grad_posed.sizes());
}

// Gradients of vertices (shape of vertices), weights [V,J] and transforms [B,J,4,4]; one not
// asked for is an empty tensor. The ones the kernels accumulate into start at zero.
// `zero_vertices` zeroes grad_vertices too (for launchers that accumulate into it).
inline std::tuple<Tensor, Tensor, Tensor> allocate_backward(
    const Tensor& vertices, const Tensor& weights, const Tensor& transforms, bool vertices_grad,
    bool weights_grad, bool transforms_grad, bool zero_vertices) {
  const auto opts = transforms.options();
  Tensor grad_vertices = !vertices_grad ? at::empty({0}, opts)
                         : zero_vertices ? at::zeros(vertices.sizes(), opts)
                                         : at::empty(vertices.sizes(), opts);
  Tensor grad_weights = weights_grad ? at::zeros(weights.sizes(), opts) : at::empty({0}, opts);
  Tensor grad_transforms =
      transforms_grad ? at::zeros(transforms.sizes(), opts) : at::empty({0}, opts);
  return {grad_vertices, grad_weights, grad_transforms};
}

template <typename scalar_t>
BackwardArgs<scalar_t> backward_args(const Tensor& grad_posed, const Tensor& vertices,
                                     const Tensor& weights, const Tensor& transforms,
                                     const std::tuple<Tensor, Tensor, Tensor>& out,
                                     bool vertices_grad, bool weights_grad,
                                     bool transforms_grad) {
  BackwardArgs<scalar_t> a;
  a.in = inputs<scalar_t>(vertices, weights, transforms);
  a.grad_posed = grad_posed.data_ptr<scalar_t>();
  a.grad_vertices = vertices_grad ? std::get<0>(out).data_ptr<scalar_t>() : nullptr;
  a.grad_weights = weights_grad ? std::get<1>(out).data_ptr<scalar_t>() : nullptr;
  a.grad_transforms = transforms_grad ? std::get<2>(out).data_ptr<scalar_t>() : nullptr;
  return a;
}

}  // namespace skinning
}  // namespace mp3d
