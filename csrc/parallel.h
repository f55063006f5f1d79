// Host-only scheduling helper for the CPU kernels.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

namespace mp3d {

// Runs body(task, scratch) once for every task in [0, n_tasks) on at::parallel_for's
// threads, each thread taking the next task from a shared counter when it finishes one, with
// one default-constructed Scratch per thread that its tasks reuse (buffers kept out of the
// per-task path). at::parallel_for alone hands each thread one contiguous block, which leaves
// a thread idle when the work is uneven along the range (the tiles of an image, whose object
// sits in some of them). Give the tasks biggest first for the best balance. Serial where
// at::parallel_for is serial.
template <typename Scratch, typename Body>
void parallel_for_dynamic(int64_t n_tasks, const Body& body) {
  if (n_tasks <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(at::get_num_threads(), n_tasks);
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    Scratch scratch;
    for (int64_t task = next.fetch_add(1); task < n_tasks; task = next.fetch_add(1))
      body(task, scratch);
  });
}

}  // namespace mp3d
