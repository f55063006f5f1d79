// C++ CPU kernel of the training SSIM and its gradient (CPU only: CUDA tensors run the torch
// implementation, mp3d.splat.ssim.ssim_loss_value, which is also its reference).
//
// Images [H,W,C] are read as rows of W*C values; the 11-tap Gaussian window is separable,
// so a blur is a horizontal pass (taps C values apart) and a vertical one, over the valid
// region [H-10, (W-10)*C]. Two phases, each parallel over rows:
//  1. strips of output rows: blur the five maps x, y, x^2, y^2, xy across, then down, into
//     strip-sized buffers that stay in cache; sum S and write the three maps the gradient
//     needs (dS/dmu_x, dS/dE[x^2], dS/dE[xy]) for the whole image;
//  2. strips of input rows: the transposed blur of those maps as a gather (each input row
//     sums the output rows and columns its window reaches), then
//     grad = (G^T d_mu + 2 x G^T d_xx + y G^T d_xy) / n.
// Every inner loop runs along a contiguous row, which the compiler vectorises.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "../common.h"

namespace mp3d {
namespace ssim {
namespace {

using at::Tensor;

constexpr int kWindow = 11;
constexpr double kSigma = 1.5, kC1 = 0.01 * 0.01, kC2 = 0.03 * 0.03;
constexpr int64_t kStripRows = 16;  // output rows a task blurs at a time

template <typename T>
struct Taps {
  T w[kWindow];
  Taps() {
    double g[kWindow], total = 0.0;
    for (int i = 0; i < kWindow; ++i) {
      const double x = i - (kWindow - 1) / 2.0;
      g[i] = std::exp(-x * x / (2.0 * kSigma * kSigma));
      total += g[i];
    }
    for (int i = 0; i < kWindow; ++i) w[i] = static_cast<T>(g[i] / total);
  }
};

// out[q] = sum_i taps[i] * in[q + i * stride], q in [0, n).
template <typename T>
inline void blur_row(const T* in, int64_t stride, int64_t n, const Taps<T>& taps, T* out) {
  for (int64_t q = 0; q < n; ++q) out[q] = taps.w[0] * in[q];
  for (int i = 1; i < kWindow; ++i) {
    const T w = taps.w[i];
    const T* src = in + i * stride;
    for (int64_t q = 0; q < n; ++q) out[q] += w * src[q];
  }
}

// Phase 1 for output rows [r0, r1): adds sum S to `total` and writes d_mu, d_xx, d_xy rows.
template <typename T>
void forward_strip(const T* x, const T* y, int64_t row_len, int64_t out_len, int64_t channels,
                   int64_t r0, int64_t r1, const Taps<T>& taps, double& total, T* d_mu,
                   T* d_xx, T* d_xy, bool need_grad) {
  const int64_t in_rows = r1 - r0 + kWindow - 1;
  std::vector<T> product(row_len);
  std::vector<T> across(5 * in_rows * out_len);  // [5, in_rows, out_len]
  T* const maps[5] = {across.data(), across.data() + in_rows * out_len,
                      across.data() + 2 * in_rows * out_len,
                      across.data() + 3 * in_rows * out_len,
                      across.data() + 4 * in_rows * out_len};
  for (int64_t row = 0; row < in_rows; ++row) {
    const T* xs = x + (r0 + row) * row_len;
    const T* ys = y + (r0 + row) * row_len;
    blur_row(xs, channels, out_len, taps, maps[0] + row * out_len);
    blur_row(ys, channels, out_len, taps, maps[1] + row * out_len);
    for (int64_t q = 0; q < row_len; ++q) product[q] = xs[q] * xs[q];
    blur_row(product.data(), channels, out_len, taps, maps[2] + row * out_len);
    for (int64_t q = 0; q < row_len; ++q) product[q] = ys[q] * ys[q];
    blur_row(product.data(), channels, out_len, taps, maps[3] + row * out_len);
    for (int64_t q = 0; q < row_len; ++q) product[q] = xs[q] * ys[q];
    blur_row(product.data(), channels, out_len, taps, maps[4] + row * out_len);
  }
  std::vector<T> down(5 * out_len);
  const T c1 = static_cast<T>(kC1), c2 = static_cast<T>(kC2);
  for (int64_t r = r0; r < r1; ++r) {
    for (int k = 0; k < 5; ++k)
      blur_row(maps[k] + (r - r0) * out_len, out_len, out_len, taps, down.data() + k * out_len);
    const T* mu_x = down.data();
    const T* mu_y = mu_x + out_len;
    const T* e_xx = mu_y + out_len;
    const T* e_yy = e_xx + out_len;
    const T* e_xy = e_yy + out_len;
    double row_total = 0.0;
    for (int64_t q = 0; q < out_len; ++q) {
      const T mu_xy = mu_x[q] * mu_y[q];
      const T a1 = T(2) * mu_xy + c1;
      const T a2 = T(2) * (e_xy[q] - mu_xy) + c2;
      const T mu_sq = mu_x[q] * mu_x[q] + mu_y[q] * mu_y[q];
      const T b1 = mu_sq + c1;
      const T b2 = e_xx[q] + e_yy[q] - mu_sq + c2;
      const T inverse = T(1) / (b1 * b2);
      const T s = a1 * a2 * inverse;
      row_total += static_cast<double>(s);
      if (need_grad) {
        const int64_t i = r * out_len + q;
        d_mu[i] = T(2) * mu_y[q] * (a2 - a1) * inverse +
                  T(2) * mu_x[q] * s * (T(1) / b2 - T(1) / b1);
        d_xx[i] = -s / b2;
        d_xy[i] = T(2) * a1 * inverse;
      }
    }
    total += row_total;
  }
}

// Phase 2 for input rows [y0, y1): grad rows from the gather form of the transposed blur.
template <typename T>
void backward_rows(const T* x, const T* y, const T* const d[3], int64_t row_len,
                   int64_t out_len, int64_t out_rows, int64_t channels, int64_t y0, int64_t y1,
                   const Taps<T>& taps, T scale, T* grad) {
  std::vector<T> down(3 * out_len), across(3 * row_len);
  for (int64_t row = y0; row < y1; ++row) {
    // Down: output rows r = row - i for the taps i that land inside [0, out_rows).
    std::fill(down.begin(), down.end(), T(0));
    const int i_lo = static_cast<int>(std::max<int64_t>(0, row - out_rows + 1));
    const int i_hi = static_cast<int>(std::min<int64_t>(kWindow - 1, row));
    for (int k = 0; k < 3; ++k) {
      T* out = down.data() + k * out_len;
      for (int i = i_lo; i <= i_hi; ++i) {
        const T w = taps.w[i];
        const T* src = d[k] + (row - i) * out_len;
        for (int64_t q = 0; q < out_len; ++q) out[q] += w * src[q];
      }
    }
    // Across: input column p gathers output columns p - i * channels in [0, out_len).
    std::fill(across.begin(), across.end(), T(0));
    for (int k = 0; k < 3; ++k) {
      const T* src = down.data() + k * out_len;
      T* out = across.data() + k * row_len;
      for (int i = 0; i < kWindow; ++i) {
        const T w = taps.w[i];
        T* dst = out + i * channels;
        for (int64_t q = 0; q < out_len; ++q) dst[q] += w * src[q];
      }
    }
    const T* xs = x + row * row_len;
    const T* ys = y + row * row_len;
    T* g = grad + row * row_len;
    const T* g_mu = across.data();
    const T* g_xx = g_mu + row_len;
    const T* g_xy = g_xx + row_len;
    for (int64_t p = 0; p < row_len; ++p)
      g[p] = (g_mu[p] + T(2) * xs[p] * g_xx[p] + ys[p] * g_xy[p]) * scale;
  }
}

std::tuple<Tensor, Tensor> ssim_fwd_cpu(const Tensor& prediction, const Tensor& target,
                                        bool need_grad) {
  TORCH_CHECK_VALUE(prediction.dim() == 3, "prediction must be [H,W,C], got ",
                    prediction.sizes());
  TORCH_CHECK_VALUE(target.sizes() == prediction.sizes(), "target must match prediction ",
                    prediction.sizes(), ", got ", target.sizes());
  TORCH_CHECK_VALUE(prediction.size(0) >= kWindow && prediction.size(1) >= kWindow,
                    "images must be at least 11x11, got ", prediction.size(0), "x",
                    prediction.size(1));
  TORCH_CHECK_VALUE(prediction.scalar_type() == at::kFloat ||
                        prediction.scalar_type() == at::kDouble,
                    "prediction must be float32 or float64, got ", prediction.scalar_type());
  MP3D_CHECK_DTYPE(target, prediction.scalar_type());
  MP3D_CHECK_CONTIGUOUS(prediction);
  MP3D_CHECK_CONTIGUOUS(target);
  MP3D_CHECK_DEVICE(target, prediction);
  TORCH_CHECK_VALUE(prediction.device().is_cpu(), "ssim_fwd runs on CPU tensors");
  const int64_t height = prediction.size(0), width = prediction.size(1);
  const int64_t channels = prediction.size(2);
  const int64_t row_len = width * channels, out_len = (width - kWindow + 1) * channels;
  const int64_t out_rows = height - kWindow + 1;
  const auto opts = prediction.options();
  Tensor value = at::empty({}, opts);
  Tensor grad = need_grad ? at::empty({height, width, channels}, opts) : at::empty({0}, opts);
  AT_DISPATCH_FLOATING_TYPES(prediction.scalar_type(), "ssim_fwd_cpu", [&] {
    using T = scalar_t;
    const Taps<T> taps;
    const T* x = prediction.data_ptr<T>();
    const T* y = target.data_ptr<T>();
    std::vector<T> d_maps(need_grad ? 3 * out_rows * out_len : 0);
    T* d[3] = {nullptr, nullptr, nullptr};
    if (need_grad)
      for (int k = 0; k < 3; ++k) d[k] = d_maps.data() + k * out_rows * out_len;
    const int64_t n_strips = (out_rows + kStripRows - 1) / kStripRows;
    std::vector<double> totals(n_strips, 0.0);  // summed in strip order: thread-count exact
    at::parallel_for(0, n_strips, 1, [&](int64_t begin, int64_t end) {
      for (int64_t s = begin; s < end; ++s) {
        const int64_t r0 = s * kStripRows, r1 = std::min(out_rows, r0 + kStripRows);
        forward_strip(x, y, row_len, out_len, channels, r0, r1, taps, totals[s], d[0], d[1],
                      d[2], need_grad);
      }
    });
    double total = 0.0;
    for (double t : totals) total += t;
    const double n = static_cast<double>(out_rows * out_len);
    value.fill_(total / n);
    if (!need_grad) return;
    T* g = grad.data_ptr<T>();
    const T scale = static_cast<T>(1.0 / n);
    const T* const maps[3] = {d[0], d[1], d[2]};
    at::parallel_for(0, height, kStripRows, [&](int64_t begin, int64_t end) {
      backward_rows(x, y, maps, row_len, out_len, out_rows, channels, begin, end, taps, scale,
                    g);
    });
  });
  return {value, grad};
}

}  // namespace
}  // namespace ssim
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) { m.impl("ssim_fwd", &mp3d::ssim::ssim_fwd_cpu); }
