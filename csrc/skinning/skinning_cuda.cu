// CUDA kernels for linear blend skinning.
//
// Forward and dL/dvertices: one thread per (batch, vertex) pair, blending the vertex's 3x4
// transform in registers (a block's threads mostly share a batch element, so its transforms
// are read through the cache by all of them). dL/dvertices of shared [V,3] vertices is summed
// over the batch with atomicAdd.
// dL/dtransforms (a sum over vertices): a block per (batch element, vertex chunk), one
// thread per (joint, matrix entry); the chunk's outer products P_bv = g xh^T are staged in
// shared memory a tile at a time, and each block adds its partial sums with atomicAdd.
// dL/dweights (a sum over the batch): one thread per (vertex, joint), looping over a chunk
// of the batch; chunks add with atomicAdd.
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "skinning_host.h"

namespace mp3d {
namespace skinning {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 32;                        // vertices staged at once for dL/dtransforms
constexpr int64_t kTargetBlocks = 2048;          // dL/dtransforms: blocks worth launching
constexpr int64_t kTargetThreads = int64_t{1} << 18;  // dL/dweights: threads worth launching

inline unsigned int n_blocks(int64_t n) {
  return static_cast<unsigned int>((n + kThreads - 1) / kThreads);
}

__device__ __forceinline__ int64_t min_(int64_t a, int64_t b) { return a < b ? a : b; }

// Thread n: the pair (b, v) = (n / V, n % V).
template <typename scalar_t>
__global__ void forward_kernel(const ForwardArgs<scalar_t> args, int64_t n_pairs) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n < n_pairs) skin_vertex(args, n / args.in.n_vertices, n % args.in.n_vertices);
}

template <typename scalar_t>
__global__ void vertex_grad_kernel(const BackwardArgs<scalar_t> args, int64_t n_pairs) {
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= n_pairs) return;
  const Inputs<scalar_t>& in = args.in;
  const int64_t b = n / in.n_vertices, v = n % in.n_vertices;
  scalar_t m[kRows3x4], grad_x[3];
  blend_transform(in, b, v, m);
  vertex_grad(m, args.grad_posed + 3 * (b * in.n_vertices + v), grad_x);
  if (in.vertex_batch_stride == 0) {
    for (int k = 0; k < 3; ++k) atomicAdd(args.grad_vertices + 3 * v + k, grad_x[k]);
  } else {
    for (int k = 0; k < 3; ++k) args.grad_vertices[3 * (b * in.n_vertices + v) + k] = grad_x[k];
  }
}

// Block (b, chunk): dL/dA_bj[entry] over the vertices of one chunk, for every (j, entry).
template <typename scalar_t>
__global__ void transform_grad_kernel(const BackwardArgs<scalar_t> args, int64_t chunk_size) {
  __shared__ scalar_t tile[kTile * kRows3x4];
  const Inputs<scalar_t>& in = args.in;
  const int64_t b = blockIdx.x;
  const int64_t v_begin = static_cast<int64_t>(blockIdx.y) * chunk_size;
  const int64_t v_end = min_(v_begin + chunk_size, in.n_vertices);
  const int64_t n_pairs = in.n_joints * kRows3x4;
  // Pairs (j, entry) beyond one block's threads take further rounds over the chunk.
  for (int64_t first = 0; first < n_pairs; first += blockDim.x) {
    const int64_t pair = first + threadIdx.x;
    const int64_t j = pair / kRows3x4, entry = pair % kRows3x4;
    scalar_t acc = 0;
    for (int64_t tile_begin = v_begin; tile_begin < v_end; tile_begin += kTile) {
      const int64_t tile_size = min_(kTile, v_end - tile_begin);
      __syncthreads();  // the previous tile has been used
      for (int64_t i = threadIdx.x; i < tile_size * kRows3x4; i += blockDim.x) {
        const int64_t v = tile_begin + i / kRows3x4, e = i % kRows3x4;
        const scalar_t g = args.grad_posed[3 * (b * in.n_vertices + v) + e / 4];
        tile[i] = e % 4 == 3 ? g : g * in.vertex(b, v)[e % 4];
      }
      __syncthreads();
      if (pair < n_pairs)
        for (int64_t t = 0; t < tile_size; ++t)
          acc += in.weight_row(tile_begin + t)[j] * tile[t * kRows3x4 + entry];
    }
    if (pair < n_pairs) atomicAdd(args.grad_transforms + (b * in.n_joints + j) * 16 + entry, acc);
  }
}

// Thread (v, j), batch chunk blockIdx.y: dL/dw_vj over the chunk.
template <typename scalar_t>
__global__ void weight_grad_kernel(const BackwardArgs<scalar_t> args, int64_t batch_chunk) {
  const Inputs<scalar_t>& in = args.in;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (n >= in.n_vertices * in.n_joints) return;
  const int64_t v = n / in.n_joints, j = n % in.n_joints;
  const int64_t b_begin = static_cast<int64_t>(blockIdx.y) * batch_chunk;
  const int64_t b_end = min_(b_begin + batch_chunk, in.n_batch);
  scalar_t sum = 0;
  for (int64_t b = b_begin; b < b_end; ++b) {
    scalar_t p[kRows3x4], s;
    outer_grad(args.grad_posed + 3 * (b * in.n_vertices + v), in.vertex(b, v), p);
    frobenius_3x4(in.transform(b, j), p, s);
    sum += s;
  }
  atomicAdd(args.grad_weights + n, sum);
}

Tensor forward_cuda(const Tensor& vertices, const Tensor& weights, const Tensor& transforms) {
  check_inputs(vertices, weights, transforms);
  const c10::cuda::CUDAGuard guard(vertices.device());
  Tensor posed = allocate_forward(weights, transforms);
  const int64_t n_batch = transforms.size(0), n_vertices = weights.size(0);
  if (n_batch == 0 || n_vertices == 0) return posed;
  AT_DISPATCH_FLOATING_TYPES(vertices.scalar_type(), "lbs_fwd_cuda", [&] {
    const auto args = forward_args<scalar_t>(vertices, weights, transforms, posed);
    const int64_t n_pairs = n_batch * n_vertices;
    forward_kernel<scalar_t><<<n_blocks(n_pairs), kThreads, 0,
                               c10::cuda::getCurrentCUDAStream()>>>(args, n_pairs);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return posed;
}

std::tuple<Tensor, Tensor, Tensor> backward_cuda(const Tensor& grad_posed,
                                                 const Tensor& vertices, const Tensor& weights,
                                                 const Tensor& transforms, bool vertices_grad,
                                                 bool weights_grad, bool transforms_grad) {
  check_inputs(vertices, weights, transforms);
  check_grad_posed(grad_posed, weights, transforms);
  const c10::cuda::CUDAGuard guard(vertices.device());
  const int64_t n_batch = transforms.size(0), n_vertices = weights.size(0),
                n_joints = weights.size(1);
  // Shared vertices accumulate over the batch; with no joints every gradient is zero.
  auto out = allocate_backward(vertices, weights, transforms, vertices_grad, weights_grad,
                               transforms_grad,
                               /*zero_vertices=*/vertices.dim() == 2 || n_joints == 0);
  if (n_batch == 0 || n_vertices == 0 || n_joints == 0) return out;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(vertices.scalar_type(), "lbs_bwd_cuda", [&] {
    const auto args = backward_args<scalar_t>(grad_posed, vertices, weights, transforms, out,
                                              vertices_grad, weights_grad, transforms_grad);
    if (vertices_grad) {
      const int64_t n_pairs = n_batch * n_vertices;
      vertex_grad_kernel<scalar_t><<<n_blocks(n_pairs), kThreads, 0, stream>>>(args, n_pairs);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (transforms_grad) {
      const int64_t max_chunks = (n_vertices + kTile - 1) / kTile;
      const int64_t n_chunks =
          std::clamp<int64_t>((kTargetBlocks + n_batch - 1) / n_batch, 1, max_chunks);
      const int64_t chunk_size = (n_vertices + n_chunks - 1) / n_chunks;
      const int64_t n_pairs = n_joints * kRows3x4;
      const int threads = static_cast<int>(std::min<int64_t>(1024, (n_pairs + 31) / 32 * 32));
      const dim3 grid(static_cast<unsigned int>(n_batch),
                      static_cast<unsigned int>((n_vertices + chunk_size - 1) / chunk_size));
      transform_grad_kernel<scalar_t><<<grid, threads, 0, stream>>>(args, chunk_size);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    if (weights_grad) {
      const int64_t n_pairs = n_vertices * n_joints;
      const int64_t n_chunks = std::clamp<int64_t>((kTargetThreads + n_pairs - 1) / n_pairs, 1,
                                                   std::min<int64_t>(n_batch, 65535));
      const int64_t batch_chunk = (n_batch + n_chunks - 1) / n_chunks;
      const dim3 grid(n_blocks(n_pairs),
                      static_cast<unsigned int>((n_batch + batch_chunk - 1) / batch_chunk));
      weight_grad_kernel<scalar_t><<<grid, kThreads, 0, stream>>>(args, batch_chunk);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  });
  return out;
}

}  // namespace
}  // namespace skinning
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CUDA, m) {
  m.impl("lbs_fwd", &mp3d::skinning::forward_cuda);
  m.impl("lbs_bwd", &mp3d::skinning::backward_cuda);
}
