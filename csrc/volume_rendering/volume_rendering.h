// Volume rendering of packed samples: the per-ray math shared by the CPU and CUDA kernels.
//
// A ray owns the contiguous samples [begin, end) in increasing t. For sample i,
//   tau_i = sigma_i (t_end_i - t_start_i),  alpha_i = 1 - exp(-tau_i),
//   T_i = prod_{j<i} (1 - alpha_j),         w_i = T_i alpha_i.
// A sample is used while T_i >= early_stop_eps; later samples get weight 0.
//
// Backward: with v_i = dL/dw_i (from grad_weights, grad_rgb . c_i, grad_opacity and
// grad_depth * midpoint_i),
//   dL/dtau_k = v_k T_{k+1} - sum_{i>k} v_i w_i,
// since dw_k/dtau_k = T_{k+1} and dw_i/dtau_k = -w_i for i > k.
#pragma once

#include <cmath>
#include <cstdint>

#include "../common.h"

namespace mp3d {
namespace volume_rendering {

template <typename scalar_t>
struct ForwardArgs {
  const scalar_t* sigmas;   // [S]
  const scalar_t* rgbs;     // [S,3] or nullptr (weights only)
  const scalar_t* t_starts; // [S]
  const scalar_t* t_ends;   // [S]
  const int64_t* offsets;   // [R+1]
  scalar_t early_stop_eps;
  scalar_t* weights;  // [S] out
  scalar_t* rgb;      // [R,3] out, or nullptr
  scalar_t* opacity;  // [R] out
  scalar_t* depth;    // [R] out
};

template <typename scalar_t>
MP3D_HOST_DEVICE void render_ray_forward(const ForwardArgs<scalar_t>& a, int64_t ray) {
  const int64_t begin = a.offsets[ray], end = a.offsets[ray + 1];
  scalar_t transmittance = 1, opacity = 0, depth = 0, r = 0, g = 0, b = 0;
  int64_t i = begin;
  for (; i < end && transmittance >= a.early_stop_eps; ++i) {
    // One exp per sample: alpha = 1 - exp(-tau) has absolute error ~ machine epsilon,
    // and the backward pass recomputes exactly this T sequence.
    const scalar_t survive = exp_(-a.sigmas[i] * (a.t_ends[i] - a.t_starts[i]));
    const scalar_t w = transmittance * (scalar_t(1) - survive);
    a.weights[i] = w;
    opacity += w;
    depth += w * (a.t_starts[i] + a.t_ends[i]) * scalar_t(0.5);
    if (a.rgbs != nullptr) {
      r += w * a.rgbs[3 * i];
      g += w * a.rgbs[3 * i + 1];
      b += w * a.rgbs[3 * i + 2];
    }
    transmittance *= survive;
  }
  for (; i < end; ++i) a.weights[i] = 0;
  a.opacity[ray] = opacity;
  a.depth[ray] = depth;
  if (a.rgb != nullptr) {
    a.rgb[3 * ray] = r;
    a.rgb[3 * ray + 1] = g;
    a.rgb[3 * ray + 2] = b;
  }
}

template <typename scalar_t>
struct BackwardArgs {
  // Upstream gradients; any may be nullptr when it does not reach this op.
  const scalar_t* grad_weights;  // [S]
  const scalar_t* grad_rgb;      // [R,3]
  const scalar_t* grad_opacity;  // [R]
  const scalar_t* grad_depth;    // [R]
  // Saved inputs and outputs.
  const scalar_t* sigmas;
  const scalar_t* rgbs;  // [S,3] or nullptr
  const scalar_t* t_starts;
  const scalar_t* t_ends;
  const int64_t* offsets;
  const scalar_t* weights;
  scalar_t early_stop_eps;
  // Outputs; grad_rgbs and the t gradients may be nullptr when nobody needs them.
  scalar_t* grad_sigmas;
  scalar_t* grad_rgbs;
  scalar_t* grad_t_starts;
  scalar_t* grad_t_ends;
};

// dL/dw_i for one sample.
template <typename scalar_t>
MP3D_HOST_DEVICE scalar_t weight_grad(const BackwardArgs<scalar_t>& a, int64_t ray, int64_t i) {
  scalar_t v = a.grad_weights != nullptr ? a.grad_weights[i] : scalar_t(0);
  if (a.grad_opacity != nullptr) v += a.grad_opacity[ray];
  if (a.grad_depth != nullptr)
    v += a.grad_depth[ray] * (a.t_starts[i] + a.t_ends[i]) * scalar_t(0.5);
  if (a.grad_rgb != nullptr && a.rgbs != nullptr)
    v += a.grad_rgb[3 * ray] * a.rgbs[3 * i] + a.grad_rgb[3 * ray + 1] * a.rgbs[3 * i + 1] +
         a.grad_rgb[3 * ray + 2] * a.rgbs[3 * i + 2];
  return v;
}

template <typename scalar_t>
MP3D_HOST_DEVICE void render_ray_backward(const BackwardArgs<scalar_t>& a, int64_t ray) {
  const int64_t begin = a.offsets[ray], end = a.offsets[ray + 1];
  // Pass 1: v_i, parked in grad_sigmas (overwritten in pass 2), and sum_i v_i w_i over the
  // ray (unused samples have w_i = 0).
  scalar_t remaining = 0;
  for (int64_t i = begin; i < end; ++i) {
    const scalar_t v = weight_grad(a, ray, i);
    a.grad_sigmas[i] = v;
    remaining += v * a.weights[i];
  }

  const scalar_t half_grad_depth =
      a.grad_depth != nullptr ? a.grad_depth[ray] * scalar_t(0.5) : scalar_t(0);
  scalar_t transmittance = 1;
  int64_t i = begin;
  // Pass 2: recompute T exactly as the forward did, so the same samples count as used.
  for (; i < end && transmittance >= a.early_stop_eps; ++i) {
    const scalar_t delta = a.t_ends[i] - a.t_starts[i];
    const scalar_t w = a.weights[i];
    const scalar_t v = a.grad_sigmas[i];
    transmittance *= exp_(-a.sigmas[i] * delta);
    remaining -= v * w;
    const scalar_t grad_tau = v * transmittance - remaining;
    a.grad_sigmas[i] = grad_tau * delta;
    if (a.grad_t_starts != nullptr) {
      a.grad_t_starts[i] = -grad_tau * a.sigmas[i] + w * half_grad_depth;
      a.grad_t_ends[i] = grad_tau * a.sigmas[i] + w * half_grad_depth;
    }
    if (a.grad_rgbs != nullptr) {
      for (int c = 0; c < 3; ++c)
        a.grad_rgbs[3 * i + c] = a.grad_rgb != nullptr ? w * a.grad_rgb[3 * ray + c] : scalar_t(0);
    }
  }
  for (; i < end; ++i) {
    a.grad_sigmas[i] = 0;
    if (a.grad_t_starts != nullptr) {
      a.grad_t_starts[i] = 0;
      a.grad_t_ends[i] = 0;
    }
    if (a.grad_rgbs != nullptr)
      for (int c = 0; c < 3; ++c) a.grad_rgbs[3 * i + c] = 0;
  }
}

}  // namespace volume_rendering
}  // namespace mp3d
