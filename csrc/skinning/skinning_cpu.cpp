// C++ CPU kernels for linear blend skinning, vectorised across the batch.
//
// Every vertex has the same weights in every batch element, so the kernels run the
// per-vertex math of skinning.h on lane vectors holding kLanes batch elements at once (8
// floats or 4 doubles): the transforms are first copied into a lane layout [G,J,12,L]
// (G = ceil(B / L) groups of L batch elements, padded with zeros), where one joint's 12
// matrix entries for a group are 12 contiguous vectors. The blended transform of a vertex is
// then 12 vector accumulators in registers (never a [B,V,4,4] tensor), updated with one
// broadcast weight per nonzero (vertex, joint) pair: SMPL weights have at most 4 nonzero
// joints per vertex, so each vertex's nonzero weights are first gathered into a short list.
//
// Work is split into vertex ranges, swept in blocks of kBlockVertices vertices; for each block
// the batch groups are the outer loop, so one group's transforms (J * 12 vectors) stay in L1.
// Backward: one fused sweep per (group, vertex) computes all three gradients. Tasks own
// disjoint vertex ranges and sweep every batch element, so dL/dvertices and dL/dweights (sums
// over the batch) are written race-free; dL/dtransforms (a sum over vertices) goes to a
// private lane-layout buffer per task, summed into [B,J,4,4] at the end.
//
// On x86-64 the per-range loops are compiled twice, for the baseline ISA and for AVX2+FMA,
// and the second runs where the CPU has it (the build itself targets the baseline ISA) unless
// the environment sets MP3D_DISABLE_AVX2.
// Lane vectors use the GCC/Clang vector extension.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "skinning_host.h"

#if defined(__x86_64__)
#define MP3D_SKINNING_AVX2 1
#else
#define MP3D_SKINNING_AVX2 0
#endif
#define MP3D_ALWAYS_INLINE __attribute__((always_inline)) inline

namespace mp3d {
namespace skinning {
namespace {

constexpr int64_t kBlockVertices = 128;     // vertices whose weight lists are built at once
constexpr int64_t kPairGrain = 4096;        // forward: (batch, vertex) pairs per task
constexpr int64_t kMinPairsPerTask = 4096;  // backward: below this, fewer tasks (one SMPL
                                            // body, 6890-8876 vertices, gets two: at 16384
                                            // it got one, 0.75 ms instead of 0.42 here)
// Backward: the private dL/dtransforms buffers together stay within this multiple of the
// size of the posed vertices (or one buffer, whichever is more).
constexpr int64_t kMaxPartialOverPosed = 4;

// 32-byte lane vectors: one value per batch element of a group. may_alias: they are read
// from and written to scalar buffers.
template <typename scalar_t>
struct LaneType;
template <>
struct LaneType<float> {
  typedef float type __attribute__((vector_size(32), __may_alias__));
};
template <>
struct LaneType<double> {
  typedef double type __attribute__((vector_size(32), __may_alias__));
};
template <typename scalar_t>
using Lanes = typename LaneType<scalar_t>::type;
template <typename scalar_t>
constexpr int64_t kLanes = 32 / sizeof(scalar_t);

template <typename scalar_t>
int64_t n_groups(int64_t n_batch) {
  return (n_batch + kLanes<scalar_t> - 1) / kLanes<scalar_t>;
}

// Lane vectors of the buffer `base` (a [G,J,12,L] tensor, 64-byte aligned) for group g.
template <typename scalar_t>
MP3D_ALWAYS_INLINE Lanes<scalar_t>* group_lanes(scalar_t* base, int64_t g, int64_t n_joints) {
  return reinterpret_cast<Lanes<scalar_t>*>(base + g * n_joints * kRows3x4 * kLanes<scalar_t>);
}

// out = (p[0], p[s], p[2 s], ...), built in registers.
template <typename scalar_t>
MP3D_ALWAYS_INLINE void strided_lanes(Lanes<scalar_t>& out, const scalar_t* p, int64_t s) {
  if constexpr (kLanes<scalar_t> == 8) {
    out = Lanes<scalar_t>{p[0], p[s], p[2 * s], p[3 * s], p[4 * s], p[5 * s], p[6 * s], p[7 * s]};
  } else {
    static_assert(kLanes<scalar_t> == 4, "lane vectors hold 8 floats or 4 doubles");
    out = Lanes<scalar_t>{p[0], p[s], p[2 * s], p[3 * s]};
  }
}

// out[k] lane l = src[l * stride + k] for k < 3 and the `lanes` valid lanes; the rest 0.
template <typename scalar_t>
MP3D_ALWAYS_INLINE void gather3(Lanes<scalar_t> out[3], const scalar_t* src, int64_t stride,
                                int64_t lanes) {
  if (stride == 0) {  // shared vertices: the same value in every lane
    for (int k = 0; k < 3; ++k) out[k] = Lanes<scalar_t>{} + src[k];
  } else if (lanes == kLanes<scalar_t>) {
    for (int k = 0; k < 3; ++k) strided_lanes(out[k], src + k, stride);
  } else {  // the last, partial group
    alignas(32) scalar_t tmp[3][kLanes<scalar_t>] = {};
    for (int64_t l = 0; l < lanes; ++l)
      for (int k = 0; k < 3; ++k) tmp[k][l] = src[l * stride + k];
    for (int k = 0; k < 3; ++k) out[k] = *reinterpret_cast<const Lanes<scalar_t>*>(tmp[k]);
  }
}

// dst[l * stride + k] = in[k] lane l for k < 3 and the `lanes` valid lanes.
template <typename scalar_t>
MP3D_ALWAYS_INLINE void scatter3(scalar_t* dst, int64_t stride, const Lanes<scalar_t> in[3],
                                 int64_t lanes) {
  if (lanes == kLanes<scalar_t>) {
    for (int64_t l = 0; l < kLanes<scalar_t>; ++l)
      for (int k = 0; k < 3; ++k) dst[l * stride + k] = in[k][l];
  } else {
    for (int64_t l = 0; l < lanes; ++l)
      for (int k = 0; k < 3; ++k) dst[l * stride + k] = in[k][l];
  }
}

template <typename scalar_t>
MP3D_ALWAYS_INLINE scalar_t lane_sum(const Lanes<scalar_t>& x) {
  scalar_t s = 0;
  for (int64_t l = 0; l < kLanes<scalar_t>; ++l) s += x[l];
  return s;
}

// The nonzero weights of the vertices [begin, end): vertex v's are
// entries[starts[v - begin], starts[v - begin + 1]).
template <typename scalar_t>
struct WeightLists {
  struct Entry {
    int64_t joint;
    scalar_t weight;
  };
  std::vector<Entry> entries;
  std::vector<int64_t> starts;

  void build(const Inputs<scalar_t>& in, int64_t begin, int64_t end) {
    entries.resize((end - begin) * in.n_joints);
    starts.resize(end - begin + 1);
    int64_t n = 0;
    starts[0] = 0;
    for (int64_t v = begin; v < end; ++v) {
      const scalar_t* w = in.weight_row(v);
      for (int64_t j = 0; j < in.n_joints; ++j) {  // branch-free compaction
        entries[n] = {j, w[j]};
        n += w[j] != scalar_t(0);
      }
      starts[v - begin + 1] = n;
    }
  }
};

// Posed vertices [v_begin, v_end) for the whole batch; `lane_transforms` is [G,J,12,L].
template <typename scalar_t>
MP3D_ALWAYS_INLINE void forward_range(const ForwardArgs<scalar_t>& a, scalar_t* lane_transforms,
                                      int64_t v_begin, int64_t v_end) {
  using V = Lanes<scalar_t>;
  constexpr int64_t L = kLanes<scalar_t>;
  const Inputs<scalar_t>& in = a.in;
  const int64_t n_vertices = in.n_vertices;
  WeightLists<scalar_t> lists;
  for (int64_t block = v_begin; block < v_end; block += kBlockVertices) {
    const int64_t block_end = std::min(block + kBlockVertices, v_end);
    lists.build(in, block, block_end);
    const auto* entries = lists.entries.data();
    const int64_t* starts = lists.starts.data();
    for (int64_t g = 0; g < n_groups<scalar_t>(in.n_batch); ++g) {
      const V* transforms_g = group_lanes(lane_transforms, g, in.n_joints);
      const int64_t lanes = std::min(L, in.n_batch - g * L);
      for (int64_t v = block; v < block_end; ++v) {
        V m[kRows3x4] = {};
        for (int64_t e = starts[v - block]; e < starts[v - block + 1]; ++e) {
          const V w = V{} + entries[e].weight;
          add_scaled_3x4(m, w, transforms_g + kRows3x4 * entries[e].joint);
        }
        V x[3], y[3];
        gather3(x, in.vertex(g * L, v), in.vertex_batch_stride, lanes);
        apply_transform(m, x, y);
        scatter3(a.posed + 3 * (g * L * n_vertices + v), 3 * n_vertices, y, lanes);
      }
    }
  }
}

// All gradients of vertices [v_begin, v_end) over the whole batch; dL/dtransforms is added to
// grad_lanes (this task's [G,J,12,L] buffer) when it is not nullptr.
template <typename scalar_t>
MP3D_ALWAYS_INLINE void backward_range(const BackwardArgs<scalar_t>& a,
                                       scalar_t* lane_transforms, int64_t v_begin,
                                       int64_t v_end, scalar_t* grad_lanes) {
  using V = Lanes<scalar_t>;
  constexpr int64_t L = kLanes<scalar_t>;
  const Inputs<scalar_t>& in = a.in;
  const int64_t n_vertices = in.n_vertices, n_joints = in.n_joints;
  const bool shared = in.vertex_batch_stride == 0;
  WeightLists<scalar_t> lists;
  for (int64_t block = v_begin; block < v_end; block += kBlockVertices) {
    const int64_t block_end = std::min(block + kBlockVertices, v_end);
    lists.build(in, block, block_end);
    const auto* entries = lists.entries.data();
    const int64_t* starts = lists.starts.data();
    for (int64_t g = 0; g < n_groups<scalar_t>(in.n_batch); ++g) {
      const V* transforms_g = group_lanes(lane_transforms, g, n_joints);
      V* grad_transforms_g = grad_lanes != nullptr ? group_lanes(grad_lanes, g, n_joints)
                                                   : nullptr;
      const int64_t lanes = std::min(L, in.n_batch - g * L);
      for (int64_t v = block; v < block_end; ++v) {
        V grad_y[3], x[3], p[kRows3x4];
        gather3(grad_y, a.grad_posed + 3 * (g * L * n_vertices + v), 3 * n_vertices, lanes);
        gather3(x, in.vertex(g * L, v), in.vertex_batch_stride, lanes);
        outer_grad(grad_y, x, p);  // zero in unused lanes
        if (a.grad_weights != nullptr) {
          scalar_t* grad_w = a.grad_weights + v * n_joints;
          for (int64_t j = 0; j < n_joints; ++j) {
            V s;
            frobenius_3x4(transforms_g + kRows3x4 * j, p, s);
            grad_w[j] += lane_sum<scalar_t>(s);
          }
        }
        V m[kRows3x4] = {};
        for (int64_t e = starts[v - block]; e < starts[v - block + 1]; ++e) {
          const V w = V{} + entries[e].weight;
          const int64_t at = kRows3x4 * entries[e].joint;
          if (grad_transforms_g != nullptr) add_scaled_3x4(grad_transforms_g + at, w, p);
          if (a.grad_vertices != nullptr) add_scaled_3x4(m, w, transforms_g + at);
        }
        if (a.grad_vertices != nullptr) {
          V grad_x[3];
          vertex_grad(m, grad_y, grad_x);
          if (shared) {
            for (int k = 0; k < 3; ++k) a.grad_vertices[3 * v + k] += lane_sum<scalar_t>(grad_x[k]);
          } else {
            scatter3(a.grad_vertices + 3 * (g * L * n_vertices + v), 3 * n_vertices, grad_x,
                     lanes);
          }
        }
      }
    }
  }
}

// The per-range loops for the baseline ISA and, on x86-64, for AVX2+FMA.
template <typename scalar_t>
void forward_range_baseline(const ForwardArgs<scalar_t>& a, scalar_t* lane_transforms,
                            int64_t v_begin, int64_t v_end) {
  forward_range(a, lane_transforms, v_begin, v_end);
}
template <typename scalar_t>
void backward_range_baseline(const BackwardArgs<scalar_t>& a, scalar_t* lane_transforms,
                             int64_t v_begin, int64_t v_end, scalar_t* grad_lanes) {
  backward_range(a, lane_transforms, v_begin, v_end, grad_lanes);
}

#if MP3D_SKINNING_AVX2
template <typename scalar_t>
__attribute__((target("avx2,fma"))) void forward_range_avx2(const ForwardArgs<scalar_t>& a,
                                                            scalar_t* lane_transforms,
                                                            int64_t v_begin, int64_t v_end) {
  forward_range(a, lane_transforms, v_begin, v_end);
}
template <typename scalar_t>
__attribute__((target("avx2,fma"))) void backward_range_avx2(const BackwardArgs<scalar_t>& a,
                                                             scalar_t* lane_transforms,
                                                             int64_t v_begin, int64_t v_end,
                                                             scalar_t* grad_lanes) {
  backward_range(a, lane_transforms, v_begin, v_end, grad_lanes);
}

// Whether to run the AVX2+FMA loops; MP3D_DISABLE_AVX2=1 (read once) forces the baseline ones.
bool use_avx2_fma() {
  static const bool use = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          std::getenv("MP3D_DISABLE_AVX2") == nullptr;
  return use;
}
#endif

template <typename scalar_t>
void run_forward_range(const ForwardArgs<scalar_t>& a, scalar_t* lane_transforms,
                       int64_t v_begin, int64_t v_end) {
#if MP3D_SKINNING_AVX2
  if (use_avx2_fma()) return forward_range_avx2(a, lane_transforms, v_begin, v_end);
#endif
  forward_range_baseline(a, lane_transforms, v_begin, v_end);
}

template <typename scalar_t>
void run_backward_range(const BackwardArgs<scalar_t>& a, scalar_t* lane_transforms,
                        int64_t v_begin, int64_t v_end, scalar_t* grad_lanes) {
#if MP3D_SKINNING_AVX2
  if (use_avx2_fma())
    return backward_range_avx2(a, lane_transforms, v_begin, v_end, grad_lanes);
#endif
  backward_range_baseline(a, lane_transforms, v_begin, v_end, grad_lanes);
}

// Allocates a zeroed [count, G, J, 12, L] lane-layout buffer (64-byte aligned).
template <typename scalar_t>
Tensor lane_buffer(int64_t count, int64_t n_batch, int64_t n_joints, const Tensor& like) {
  return at::zeros({count, n_groups<scalar_t>(n_batch), n_joints, kRows3x4, kLanes<scalar_t>},
                   like.options());
}

// The top three rows of transforms [B,J,4,4] in the lane layout [G,J,12,L].
template <typename scalar_t>
Tensor to_lanes(const Tensor& transforms) {
  constexpr int64_t L = kLanes<scalar_t>;
  const int64_t n_batch = transforms.size(0), n_joints = transforms.size(1);
  Tensor lanes = lane_buffer<scalar_t>(1, n_batch, n_joints, transforms);
  const scalar_t* src = transforms.data_ptr<scalar_t>();
  scalar_t* dst = lanes.data_ptr<scalar_t>();
  // Serial: B J 12 copies are a small fraction of the B V work that follows.
  for (int64_t b = 0; b < n_batch; ++b)
    for (int64_t j = 0; j < n_joints; ++j)
      for (int c = 0; c < kRows3x4; ++c)
        dst[(((b / L) * n_joints + j) * kRows3x4 + c) * L + b % L] =
            src[(b * n_joints + j) * 16 + c];
  return lanes;
}

Tensor forward_cpu(const Tensor& vertices, const Tensor& weights, const Tensor& transforms) {
  check_inputs(vertices, weights, transforms);
  Tensor posed = allocate_forward(weights, transforms);
  const int64_t n_batch = transforms.size(0), n_vertices = weights.size(0);
  if (n_batch == 0 || n_vertices == 0) return posed;
  AT_DISPATCH_FLOATING_TYPES(vertices.scalar_type(), "lbs_fwd_cpu", [&] {
    const auto args = forward_args<scalar_t>(vertices, weights, transforms, posed);
    Tensor lanes = to_lanes<scalar_t>(transforms);
    scalar_t* lane_transforms = lanes.data_ptr<scalar_t>();
    const int64_t grain = std::max<int64_t>(1, kPairGrain / n_batch);
    at::parallel_for(0, n_vertices, grain, [&](int64_t begin, int64_t end) {
      run_forward_range(args, lane_transforms, begin, end);
    });
  });
  return posed;
}

// Number of vertex-range tasks for the backward pass.
int64_t backward_tasks(int64_t n_batch, int64_t n_vertices, int64_t n_joints) {
  const int64_t pairs = n_batch * n_vertices;
  int64_t tasks = std::min<int64_t>(at::get_num_threads(),
                                    (pairs + kMinPairsPerTask - 1) / kMinPairsPerTask);
  tasks = std::min(tasks, n_vertices);
  // Private buffers of 12 J per batch element vs 3 V per batch element of posed vertices.
  const int64_t cap = kMaxPartialOverPosed * 3 * n_vertices / std::max<int64_t>(12 * n_joints, 1);
  return std::max<int64_t>(1, std::min(tasks, cap));
}

std::tuple<Tensor, Tensor, Tensor> backward_cpu(const Tensor& grad_posed, const Tensor& vertices,
                                                const Tensor& weights, const Tensor& transforms,
                                                bool vertices_grad, bool weights_grad,
                                                bool transforms_grad) {
  check_inputs(vertices, weights, transforms);
  check_grad_posed(grad_posed, weights, transforms);
  const bool shared = vertices.dim() == 2;
  auto out = allocate_backward(vertices, weights, transforms, vertices_grad, weights_grad,
                               transforms_grad, /*zero_vertices=*/shared);
  const int64_t n_batch = transforms.size(0), n_vertices = weights.size(0),
                n_joints = weights.size(1);
  if (n_batch == 0 || n_vertices == 0 || !(vertices_grad || weights_grad || transforms_grad))
    return out;
  const int64_t tasks = backward_tasks(n_batch, n_vertices, n_joints);
  AT_DISPATCH_FLOATING_TYPES(vertices.scalar_type(), "lbs_bwd_cpu", [&] {
    constexpr int64_t L = kLanes<scalar_t>;
    const auto args = backward_args<scalar_t>(grad_posed, vertices, weights, transforms, out,
                                              vertices_grad, weights_grad, transforms_grad);
    Tensor lanes = to_lanes<scalar_t>(transforms);
    scalar_t* lane_transforms = lanes.data_ptr<scalar_t>();
    Tensor partials = transforms_grad ? lane_buffer<scalar_t>(tasks, n_batch, n_joints, transforms)
                                      : Tensor();
    const int64_t per_task = n_groups<scalar_t>(n_batch) * n_joints * kRows3x4 * L;
    at::parallel_for(0, tasks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t)
        run_backward_range(args, lane_transforms, n_vertices * t / tasks,
                           n_vertices * (t + 1) / tasks,
                           transforms_grad ? partials.data_ptr<scalar_t>() + t * per_task
                                           : nullptr);
    });
    if (transforms_grad) {
      // grad_transforms[b, j, c] = sum over tasks of the partials (rows 3 stay zero); serial,
      // like to_lanes: tasks B J 12 additions.
      const scalar_t* parts = partials.data_ptr<scalar_t>();
      for (int64_t b = 0; b < n_batch; ++b)
        for (int64_t j = 0; j < n_joints; ++j)
          for (int c = 0; c < kRows3x4; ++c) {
            const int64_t at = (((b / L) * n_joints + j) * kRows3x4 + c) * L + b % L;
            scalar_t sum = 0;
            for (int64_t t = 0; t < tasks; ++t) sum += parts[t * per_task + at];
            args.grad_transforms[(b * n_joints + j) * 16 + c] = sum;
          }
    }
  });
  return out;
}

}  // namespace
}  // namespace skinning
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) {
  m.impl("lbs_fwd", &mp3d::skinning::forward_cpu);
  m.impl("lbs_bwd", &mp3d::skinning::backward_cpu);
}
