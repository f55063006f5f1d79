// C++ CPU kernel of the occupancy-grid ray march (CPU only: CUDA tensors run the torch
// reference, mp3d.ops.ray_marching.march_reference).
//
// Ray r takes uniform steps of step_size from entry[r] to exit[r]: edge k is
// entry + (k + offset[r] - 1) * step_size clamped into [entry, max(exit, entry)], so the first
// step is shortened by the jitter offset. A step is kept when it has positive length and its
// midpoint lies in an occupied cell of the [res,res,res] grid over aabb. The torch reference
// builds every [R, n_steps] midpoint; here each ray walks its own span and stops at its exit,
// with the same float32 operations in the same order (the build has no FMA contraction), so
// both keep the same steps. Each task marches a contiguous range of rays into its own
// buffers, which are then copied out in range order: ray order, as the reference packs them.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "../common.h"

namespace mp3d {
namespace ray_marching {
namespace {

using at::Tensor;

constexpr int64_t kRayGrain = 256;  // fewest rays worth a task of their own

struct Grid {
  const bool* occupied;
  int64_t res;
  float low[3];
  float scale[3];  // res / box extent, per axis: cells per scene unit
};

struct Samples {
  std::vector<float> starts, ends;
  std::vector<int64_t> rays;
};

// Visits the kept steps of one ray: emit(start, end) for each, in order.
template <typename Emit>
inline void march_ray(const float* origin, const float* direction, float entry, float exit_,
                      float offset, float step, int64_t n_steps, const Grid& grid, Emit emit) {
  const float top = std::max(exit_, entry);
  const float res = float(grid.res);
  auto edge = [&](int64_t k) {
    const float e = entry + ((float(k) + offset) - 1.0f) * step;
    return std::min(std::max(e, entry), top);
  };
  float start = edge(0);
  for (int64_t k = 0; k < n_steps; ++k) {
    if (start >= top) break;  // every later edge is clamped to the exit too
    const float end = edge(k + 1);
    if (end > start) {
      const float mid = (start + end) * 0.5f;
      int64_t cell[3];
      bool inside = true;
      for (int a = 0; a < 3; ++a) {
        const float point = origin[a] + direction[a] * mid;
        const float c = std::floor((point - grid.low[a]) * grid.scale[a]);
        inside = inside && c >= 0.0f && c < res;
        cell[a] = int64_t(c);
      }
      if (inside && grid.occupied[(cell[0] * grid.res + cell[1]) * grid.res + cell[2]]) {
        emit(start, end);
      }
    }
    start = end;
  }
}

std::tuple<Tensor, Tensor, Tensor> march_cpu(const Tensor& origins, const Tensor& directions,
                                             const Tensor& entry, const Tensor& exit_,
                                             const Tensor& offsets, const Tensor& occupied,
                                             const Tensor& aabb, double step_size,
                                             int64_t n_steps) {
  for (const Tensor* t : {&origins, &directions, &entry, &exit_, &offsets, &aabb}) {
    MP3D_CHECK_CONTIGUOUS(*t);
    MP3D_CHECK_DTYPE(*t, at::kFloat);
    MP3D_CHECK_DEVICE(*t, origins);
  }
  MP3D_CHECK_CONTIGUOUS(occupied);
  MP3D_CHECK_DTYPE(occupied, at::kBool);
  const int64_t n_rays = origins.size(0);
  TORCH_CHECK_VALUE(origins.dim() == 2 && origins.size(1) == 3,
                    "origins must have shape [R, 3], got ", origins.sizes());
  TORCH_CHECK_VALUE(directions.sizes() == origins.sizes(), "directions must have shape ",
                    origins.sizes(), ", got ", directions.sizes());
  for (const Tensor* t : {&entry, &exit_, &offsets}) {
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == n_rays, "entry, exit and offsets must ",
                      "have shape [", n_rays, "], got ", t->sizes());
  }
  TORCH_CHECK_VALUE(occupied.dim() == 3 && occupied.size(0) == occupied.size(1) &&
                        occupied.size(1) == occupied.size(2),
                    "occupied must have shape [res, res, res], got ", occupied.sizes());
  TORCH_CHECK_VALUE(aabb.numel() == 6, "aabb must have 6 values, got ", aabb.numel());
  TORCH_CHECK_VALUE(n_steps >= 0, "n_steps must be >= 0, got ", n_steps);

  Grid grid{occupied.data_ptr<bool>(), occupied.size(0), {}, {}};
  const float* box = aabb.data_ptr<float>();
  for (int a = 0; a < 3; ++a) {
    grid.low[a] = box[a];
    grid.scale[a] = float(grid.res) / (box[3 + a] - box[a]);
  }
  const float step = float(step_size);
  const float* o = origins.data_ptr<float>();
  const float* d = directions.data_ptr<float>();
  const float* t0 = entry.data_ptr<float>();
  const float* t1 = exit_.data_ptr<float>();
  const float* off = offsets.data_ptr<float>();

  const int64_t n_tasks = std::max<int64_t>(1, std::min<int64_t>(
      at::get_num_threads(), (n_rays + kRayGrain - 1) / kRayGrain));
  const int64_t per_task = (n_rays + n_tasks - 1) / n_tasks;
  std::vector<Samples> parts(n_tasks);
  at::parallel_for(0, n_tasks, 1, [&](int64_t task_begin, int64_t task_end) {
    for (int64_t task = task_begin; task < task_end; ++task) {
      Samples& out = parts[task];
      const int64_t last = std::min(n_rays, (task + 1) * per_task);
      for (int64_t r = task * per_task; r < last; ++r) {
        march_ray(o + 3 * r, d + 3 * r, t0[r], t1[r], off[r], step, n_steps, grid,
                  [&](float a, float b) {
                    out.starts.push_back(a);
                    out.ends.push_back(b);
                    out.rays.push_back(r);
                  });
      }
    }
  });
  int64_t total = 0;
  for (const Samples& part : parts) total += int64_t(part.rays.size());
  Tensor starts = at::empty({total}, origins.options());
  Tensor ends = at::empty({total}, origins.options());
  Tensor rays = at::empty({total}, origins.options().dtype(at::kLong));
  int64_t at_index = 0;
  for (const Samples& part : parts) {
    const size_t n = part.rays.size();
    std::copy_n(part.starts.data(), n, starts.data_ptr<float>() + at_index);
    std::copy_n(part.ends.data(), n, ends.data_ptr<float>() + at_index);
    std::copy_n(part.rays.data(), n, rays.data_ptr<int64_t>() + at_index);
    at_index += int64_t(n);
  }
  return {starts, ends, rays};
}

}  // namespace
}  // namespace ray_marching
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) { m.impl("march_occupancy", &mp3d::ray_marching::march_cpu); }
