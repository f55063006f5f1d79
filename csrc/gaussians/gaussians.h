// Per-Gaussian and per-pixel math of 3D Gaussian splatting, shared by the CPU and CUDA
// kernels. The contract is mp3d/ops/gaussians.py (its torch reference and module docstring):
//
//   projection  mean, quat (w first, any norm), scale -> 2D mean (px), conic, depth, radius
//   colour      SH coefficients [K,3] seen along a direction -> max(SH . Y + 0.5, 0)
//   binning     every Gaussian goes into each 16x16 tile that its alpha >= 1/255 ellipse
//               touches (a superset of the pixels where it is drawn); lists sorted by depth
//   raster      per pixel, front to back: alpha = min(0.99, o exp(-d^T conic d / 2)), skipped
//               below 1/255, stopping before the Gaussian that brings T below 1e-4
//
// Matrices are row-major arrays. Backward functions recompute what the forward computed.
#pragma once

#include <cstdint>

#include "../common.h"

namespace mp3d {
namespace gaussians {

constexpr double kLowPass = 0.3;  // px^2 added to the diagonal of every 2D covariance
constexpr double kAlphaMax = 0.99;
constexpr double kAlphaMin = 1.0 / 255.0;
constexpr double kTransmittanceMin = 1e-4;
constexpr int kMaxShCoeffs = 16;  // degree 3

// A pinhole camera: world-to-camera rotation R and translation t, intrinsics in pixels.
template <typename T>
struct Camera {
  T R[9];
  T t[3];
  T fx, fy, cx, cy;
  T near;
  int64_t width, height;
};

// What projecting one Gaussian computes on the way, kept for the backward pass.
template <typename T>
struct Projection {
  T cam[3];       // camera-space mean
  bool in_front;  // cam z > near
  T z;            // cam z, or 1 for Gaussians closer than near (their outputs are culled)
  T qn[4];        // unit quaternion
  T rot[9];       // its rotation matrix
  T L[9];         // rot diag(scale): Sigma = L L^T
  T sigma[9];     // world-space covariance
  T jw[6];        // Jacobian of the projection times the view rotation, 2x3
  T A, B, C;      // 2D covariance [[A, B], [B, C]], low-pass included
  T det;          // A C - B^2
};

template <typename T>
MP3D_HOST_DEVICE void quat_to_rotation(const T* q, T* R) {
  const T w = q[0], x = q[1], y = q[2], z = q[3];
  R[0] = T(1) - T(2) * (y * y + z * z);
  R[1] = T(2) * (x * y - w * z);
  R[2] = T(2) * (x * z + w * y);
  R[3] = T(2) * (x * y + w * z);
  R[4] = T(1) - T(2) * (x * x + z * z);
  R[5] = T(2) * (y * z - w * x);
  R[6] = T(2) * (x * z - w * y);
  R[7] = T(2) * (y * z + w * x);
  R[8] = T(1) - T(2) * (x * x + y * y);
}

template <typename T>
MP3D_HOST_DEVICE void project_one(const T* mean, const T* quat, const T* scale,
                                  const Camera<T>& camera, Projection<T>& p) {
  const T* R = camera.R;
  for (int i = 0; i < 3; ++i) {
    p.cam[i] = R[3 * i] * mean[0] + R[3 * i + 1] * mean[1] + R[3 * i + 2] * mean[2] +
               camera.t[i];
  }
  p.in_front = p.cam[2] > camera.near;
  p.z = p.in_front ? p.cam[2] : T(1);

  const T norm = sqrt_(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] +
                       quat[3] * quat[3]);
  for (int i = 0; i < 4; ++i) p.qn[i] = quat[i] / norm;
  quat_to_rotation(p.qn, p.rot);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) p.L[3 * i + j] = p.rot[3 * i + j] * scale[j];
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      p.sigma[3 * i + j] = p.L[3 * i] * p.L[3 * j] + p.L[3 * i + 1] * p.L[3 * j + 1] +
                           p.L[3 * i + 2] * p.L[3 * j + 2];

  // J = [[fx/z, 0, -fx x/z^2], [0, fy/z, -fy y/z^2]]; jw = J R.
  const T z = p.z, x = p.cam[0], y = p.cam[1];
  const T j00 = camera.fx / z, j02 = -camera.fx * x / (z * z);
  const T j11 = camera.fy / z, j12 = -camera.fy * y / (z * z);
  for (int k = 0; k < 3; ++k) {
    p.jw[k] = j00 * R[k] + j02 * R[6 + k];
    p.jw[3 + k] = j11 * R[3 + k] + j12 * R[6 + k];
  }
  // M = jw Sigma jw^T (2x2, symmetric).
  T s0[3], s1[3];  // Sigma jw^T columns
  for (int i = 0; i < 3; ++i) {
    s0[i] = p.sigma[3 * i] * p.jw[0] + p.sigma[3 * i + 1] * p.jw[1] + p.sigma[3 * i + 2] * p.jw[2];
    s1[i] = p.sigma[3 * i] * p.jw[3] + p.sigma[3 * i + 1] * p.jw[4] + p.sigma[3 * i + 2] * p.jw[5];
  }
  p.A = p.jw[0] * s0[0] + p.jw[1] * s0[1] + p.jw[2] * s0[2] + T(kLowPass);
  p.B = p.jw[0] * s1[0] + p.jw[1] * s1[1] + p.jw[2] * s1[2];
  p.C = p.jw[3] * s1[0] + p.jw[4] * s1[1] + p.jw[5] * s1[2] + T(kLowPass);
  p.det = p.A * p.C - p.B * p.B;
}

// Outputs of one Gaussian's projection; radius is 0 when it is culled.
template <typename T>
MP3D_HOST_DEVICE void project_outputs(const Projection<T>& p, const Camera<T>& camera,
                                      T* mean2d, T* conic, T* depth, int32_t* radius) {
  const T u = camera.fx * p.cam[0] / p.z + camera.cx;
  const T v = camera.fy * p.cam[1] / p.z + camera.cy;
  mean2d[0] = u;
  mean2d[1] = v;
  conic[0] = p.C / p.det;
  conic[1] = -p.B / p.det;
  conic[2] = p.A / p.det;
  *depth = p.cam[2];
  const T mid = T(0.5) * (p.A + p.C);
  const T gap = mid * mid - p.det;
  const T largest = mid + sqrt_(gap > T(0) ? gap : T(0));
  const T r = ceil_(T(3) * sqrt_(largest));
  const T r_max = T(1 << 30);  // keeps the int32 cast defined for huge splats (as the reference)
  const bool on_image = u + r > T(0) && u - r < T(camera.width) && v + r > T(0) &&
                        v - r < T(camera.height);
  *radius = p.in_front && on_image ? static_cast<int32_t>(r < r_max ? r : r_max) : 0;
}

// Gradients of one Gaussian's projection outputs (mean2d, conic, depth) to its inputs.
template <typename T>
MP3D_HOST_DEVICE void project_one_backward(const T* mean, const T* quat, const T* scale,
                                           const Camera<T>& camera, const T* grad_mean2d,
                                           const T* grad_conic, T grad_depth, T* grad_mean,
                                           T* grad_quat, T* grad_scale) {
  Projection<T> p;
  project_one(mean, quat, scale, camera, p);
  const T A = p.A, B = p.B, C = p.C, det = p.det, det2 = det * det;
  const T ga = grad_conic[0], gb = grad_conic[1], gc = grad_conic[2];
  // conic = (C, -B, A) / det, differentiated in A, B (the upper entry only) and C.
  const T gA = ga * (-C * C / det2) + gb * (B * C / det2) + gc * (T(1) / det - A * C / det2);
  const T gB = ga * (T(2) * B * C / det2) + gb * (-T(1) / det - T(2) * B * B / det2) +
               gc * (T(2) * A * B / det2);
  const T gC = ga * (T(1) / det - A * C / det2) + gb * (A * B / det2) + gc * (-A * A / det2);
  // M = jw Sigma jw^T with gradient G = [[gA, gB], [0, gC]]; Gs = G + G^T.
  const T gs00 = T(2) * gA, gs01 = gB, gs11 = T(2) * gC;
  // d jw = Gs jw Sigma   (2x3)
  T jws[6];  // jw Sigma
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k)
      jws[3 * r + k] = p.jw[3 * r] * p.sigma[k] + p.jw[3 * r + 1] * p.sigma[3 + k] +
                       p.jw[3 * r + 2] * p.sigma[6 + k];
  T g_jw[6];
  for (int k = 0; k < 3; ++k) {
    g_jw[k] = gs00 * jws[k] + gs01 * jws[3 + k];
    g_jw[3 + k] = gs01 * jws[k] + gs11 * jws[3 + k];
  }
  // d L = jw^T Gs jw L   (3x3)
  T h[9];  // jw^T Gs jw, symmetric
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      h[3 * i + j] = p.jw[i] * (gs00 * p.jw[j] + gs01 * p.jw[3 + j]) +
                     p.jw[3 + i] * (gs01 * p.jw[j] + gs11 * p.jw[3 + j]);
  T g_rot[9];
  for (int j = 0; j < 3; ++j) grad_scale[j] = T(0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const T g_l = h[3 * i] * p.L[j] + h[3 * i + 1] * p.L[3 + j] + h[3 * i + 2] * p.L[6 + j];
      g_rot[3 * i + j] = g_l * scale[j];
      grad_scale[j] += g_l * p.rot[3 * i + j];
    }
  // Rotation matrix of the unit quaternion, then the normalisation.
  const T w = p.qn[0], x = p.qn[1], y = p.qn[2], z = p.qn[3];
  const T* g = g_rot;
  T gq[4];
  gq[0] = T(2) * (-z * g[1] + y * g[2] + z * g[3] - x * g[5] - y * g[6] + x * g[7]);
  gq[1] = T(2) * (y * g[1] + z * g[2] + y * g[3] - T(2) * x * g[4] - w * g[5] + z * g[6] +
                  w * g[7] - T(2) * x * g[8]);
  gq[2] = T(2) * (-T(2) * y * g[0] + x * g[1] + w * g[2] + x * g[3] + z * g[5] - w * g[6] +
                  z * g[7] - T(2) * y * g[8]);
  gq[3] = T(2) * (-T(2) * z * g[0] - w * g[1] + x * g[2] + w * g[3] - T(2) * z * g[4] +
                  y * g[5] + x * g[6] + y * g[7]);
  const T norm = sqrt_(quat[0] * quat[0] + quat[1] * quat[1] + quat[2] * quat[2] +
                       quat[3] * quat[3]);
  const T dot = p.qn[0] * gq[0] + p.qn[1] * gq[1] + p.qn[2] * gq[2] + p.qn[3] * gq[3];
  for (int i = 0; i < 4; ++i) grad_quat[i] = (gq[i] - p.qn[i] * dot) / norm;

  // jw = J R: dJ = d jw R^T; then J and the 2D mean as functions of the camera-space mean.
  const T* R = camera.R;
  const T g_j00 = g_jw[0] * R[0] + g_jw[1] * R[1] + g_jw[2] * R[2];
  const T g_j02 = g_jw[0] * R[6] + g_jw[1] * R[7] + g_jw[2] * R[8];
  const T g_j11 = g_jw[3] * R[3] + g_jw[4] * R[4] + g_jw[5] * R[5];
  const T g_j12 = g_jw[3] * R[6] + g_jw[4] * R[7] + g_jw[5] * R[8];
  const T fx = camera.fx, fy = camera.fy, cx_ = p.cam[0], cy_ = p.cam[1], zz = p.z;
  const T z2 = zz * zz, z3 = z2 * zz;
  T g_cam[3];
  g_cam[0] = g_j02 * (-fx / z2) + grad_mean2d[0] * fx / zz;
  g_cam[1] = g_j12 * (-fy / z2) + grad_mean2d[1] * fy / zz;
  g_cam[2] = grad_depth;
  if (p.in_front) {  // otherwise z was replaced by the constant 1
    g_cam[2] += g_j00 * (-fx / z2) + g_j02 * (T(2) * fx * cx_ / z3) + g_j11 * (-fy / z2) +
                g_j12 * (T(2) * fy * cy_ / z3) + grad_mean2d[0] * (-fx * cx_ / z2) +
                grad_mean2d[1] * (-fy * cy_ / z2);
  }
  for (int k = 0; k < 3; ++k)
    grad_mean[k] = R[k] * g_cam[0] + R[3 + k] * g_cam[1] + R[6 + k] * g_cam[2];
}

// ----------------------------------------------------------------------------- SH colour

// Real SH basis up to `degree` (constants of 3DGS) of a unit vector n, and, when dbasis is
// not null, its derivatives dY_k/dn [k][3].
template <typename T>
MP3D_HOST_DEVICE void sh_basis(const T* n, int degree, T* basis, T* dbasis) {
  const T x = n[0], y = n[1], z = n[2];
  const int count = (degree + 1) * (degree + 1);
  basis[0] = T(0.28209479177387814);
  if (dbasis != nullptr)
    for (int i = 0; i < 3 * count; ++i) dbasis[i] = T(0);
  if (degree >= 1) {
    const T c1 = T(0.48860251190291987);
    basis[1] = -c1 * y;
    basis[2] = c1 * z;
    basis[3] = -c1 * x;
    if (dbasis != nullptr) {
      dbasis[3 * 1 + 1] = -c1;
      dbasis[3 * 2 + 2] = c1;
      dbasis[3 * 3 + 0] = -c1;
    }
  }
  if (degree >= 2) {
    const T a = T(1.0925484305920792), b = T(0.31539156525252005), c = T(0.5462742152960396);
    const T xx = x * x, yy = y * y, zz = z * z;
    basis[4] = a * x * y;
    basis[5] = -a * y * z;
    basis[6] = b * (T(2) * zz - xx - yy);
    basis[7] = -a * x * z;
    basis[8] = c * (xx - yy);
    if (dbasis != nullptr) {
      T* d = dbasis;
      d[12] = a * y;             d[13] = a * x;
      d[16] = -a * z;            d[17] = -a * y;
      d[18] = -T(2) * b * x;     d[19] = -T(2) * b * y;  d[20] = T(4) * b * z;
      d[21] = -a * z;                                    d[23] = -a * x;
      d[24] = T(2) * c * x;      d[25] = -T(2) * c * y;
    }
  }
  if (degree >= 3) {
    const T a = T(0.5900435899266435), b = T(2.890611442640554), c = T(0.4570457994644658);
    const T e = T(0.3731763325901154), f = T(1.445305721320277);
    const T xx = x * x, yy = y * y, zz = z * z;
    basis[9] = -a * y * (T(3) * xx - yy);
    basis[10] = b * x * y * z;
    basis[11] = -c * y * (T(4) * zz - xx - yy);
    basis[12] = e * z * (T(2) * zz - T(3) * xx - T(3) * yy);
    basis[13] = -c * x * (T(4) * zz - xx - yy);
    basis[14] = f * z * (xx - yy);
    basis[15] = -a * x * (xx - T(3) * yy);
    if (dbasis != nullptr) {
      T* d = dbasis;
      d[27] = -T(6) * a * x * y;  d[28] = -a * (T(3) * xx - T(3) * yy);
      d[30] = b * y * z;          d[31] = b * x * z;          d[32] = b * x * y;
      d[33] = T(2) * c * x * y;   d[34] = -c * (T(4) * zz - xx - T(3) * yy);
      d[35] = -T(8) * c * y * z;
      d[36] = -T(6) * e * x * z;  d[37] = -T(6) * e * y * z;
      d[38] = e * (T(6) * zz - T(3) * xx - T(3) * yy);
      d[39] = -c * (T(4) * zz - T(3) * xx - yy);              d[40] = T(2) * c * x * y;
      d[41] = -T(8) * c * x * z;
      d[42] = T(2) * f * x * z;   d[43] = -T(2) * f * y * z;  d[44] = f * (xx - yy);
      d[45] = -a * (T(3) * xx - T(3) * yy);                   d[46] = T(6) * a * x * y;
    }
  }
}

// rgb = max(sum_k Y_k(dir / |dir|) sh[k] + 0.5, 0) for sh [n_coeffs,3] (n_coeffs >= the
// degree's count: only the first (degree+1)^2 rows are read).
template <typename T>
MP3D_HOST_DEVICE void sh_color(const T* sh, const T* dir, int degree, T* rgb) {
  const T len = sqrt_(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]);
  const T safe = len > T(1e-12) ? len : T(1e-12);
  const T n[3] = {dir[0] / safe, dir[1] / safe, dir[2] / safe};
  T basis[kMaxShCoeffs];
  sh_basis<T>(n, degree, basis, nullptr);
  const int count = (degree + 1) * (degree + 1);
  for (int c = 0; c < 3; ++c) {
    T value = T(0.5);
    for (int k = 0; k < count; ++k) value += basis[k] * sh[3 * k + c];
    rgb[c] = value > T(0) ? value : T(0);
  }
}

// Gradients of sh_color to sh [count,3] (written) and, when grad_dir is not null, to dir.
template <typename T>
MP3D_HOST_DEVICE void sh_color_backward(const T* sh, const T* dir, int degree,
                                        const T* grad_rgb, T* grad_sh, T* grad_dir) {
  const T len = sqrt_(dir[0] * dir[0] + dir[1] * dir[1] + dir[2] * dir[2]);
  const T safe = len > T(1e-12) ? len : T(1e-12);
  const T n[3] = {dir[0] / safe, dir[1] / safe, dir[2] / safe};
  T basis[kMaxShCoeffs], dbasis[3 * kMaxShCoeffs];
  sh_basis<T>(n, degree, basis, grad_dir != nullptr ? dbasis : nullptr);
  const int count = (degree + 1) * (degree + 1);
  T g[3];  // gradient of the value before the clamp at 0
  for (int c = 0; c < 3; ++c) {
    T value = T(0.5);
    for (int k = 0; k < count; ++k) value += basis[k] * sh[3 * k + c];
    g[c] = value >= T(0) ? grad_rgb[c] : T(0);
  }
  for (int k = 0; k < count; ++k)
    for (int c = 0; c < 3; ++c) grad_sh[3 * k + c] = basis[k] * g[c];
  if (grad_dir == nullptr) return;
  T gn[3] = {T(0), T(0), T(0)};
  for (int k = 0; k < count; ++k) {
    const T g_basis = sh[3 * k] * g[0] + sh[3 * k + 1] * g[1] + sh[3 * k + 2] * g[2];
    for (int i = 0; i < 3; ++i) gn[i] += g_basis * dbasis[3 * k + i];
  }
  if (len <= T(1e-12)) {  // below the clamp the direction is scaled, not normalised
    for (int i = 0; i < 3; ++i) grad_dir[i] = gn[i] / safe;
    return;
  }
  const T dot = n[0] * gn[0] + n[1] * gn[1] + n[2] * gn[2];
  for (int i = 0; i < 3; ++i) grad_dir[i] = (gn[i] - n[i] * dot) / len;
}

// ----------------------------------------------------------------------------- binning

// Tiles [tx0, tx1] x [ty0, ty1] (inclusive) holding every pixel centre where the Gaussian's
// alpha can reach 1/255: the box of the ellipse d^T conic d <= 2 ln(255 opacity), one pixel
// wider for rounding. Returns false when it touches no tile.
template <typename T>
MP3D_HOST_DEVICE bool tile_rect(const T* mean2d, const T* conic, T opacity, int64_t width,
                                int64_t height, int64_t tile_size, int64_t& tx0, int64_t& tx1,
                                int64_t& ty0, int64_t& ty1) {
  if (opacity < T(kAlphaMin)) return false;
  const T level = T(2) * log_(opacity / T(kAlphaMin));
  const T det = conic[0] * conic[2] - conic[1] * conic[1];
  if (!(det > T(0))) return false;
  const T half_x = sqrt_(level * conic[2] / det) + T(1);  // sqrt(level * cov_xx) + margin
  const T half_y = sqrt_(level * conic[0] / det) + T(1);
  // Pixel column i is inside when |i + 0.5 - u| <= half_x.
  const T x_lo = mean2d[0] - half_x - T(0.5), x_hi = mean2d[0] + half_x - T(0.5);
  const T y_lo = mean2d[1] - half_y - T(0.5), y_hi = mean2d[1] + half_y - T(0.5);
  if (!(x_hi >= T(0) && y_hi >= T(0) && x_lo <= T(width - 1) && y_lo <= T(height - 1)))
    return false;
  const int64_t px0 = x_lo > T(0) ? static_cast<int64_t>(ceil_(x_lo)) : 0;
  const int64_t py0 = y_lo > T(0) ? static_cast<int64_t>(ceil_(y_lo)) : 0;
  const int64_t px1 = x_hi < T(width - 1) ? static_cast<int64_t>(x_hi) : width - 1;
  const int64_t py1 = y_hi < T(height - 1) ? static_cast<int64_t>(y_hi) : height - 1;
  if (px0 > px1 || py0 > py1) return false;
  tx0 = px0 / tile_size;
  tx1 = px1 / tile_size;
  ty0 = py0 / tile_size;
  ty1 = py1 / tile_size;
  return true;
}

// ----------------------------------------------------------------------------- rasterization

// One projected Gaussian as the rasterizer reads it.
template <typename T>
struct Splat {
  T u, v;        // 2D mean, px
  T a, b, c;     // conic
  T opacity;
  T rgb[3];
  T depth;
  T m_cut;       // beyond this d^T conic d, alpha is surely < 1/255 (see splat_cut)
};

// A bound on d^T conic d past which opacity exp(-m/2) < 1/255 whatever the rounding of exp:
// 2 ln(255 opacity) plus a margin far above exp's relative error. Pixels beyond it skip the
// exp; pixels inside it take the exact test, so the cut changes no result.
template <typename T>
MP3D_HOST_DEVICE T splat_cut(T opacity) {
  if (!(opacity >= T(kAlphaMin))) return T(-1);
  return T(2) * log_(opacity / T(kAlphaMin)) + T(1e-3);
}

// Gradient of one splat's inputs, in the order of Splat's fields (10 values).
constexpr int kSplatGrads = 10;

// Alpha of a splat at pixel centre (px, py), before the 1/255 cut; `power` is
// opacity * exp(-m/2) before the 0.99 cap.
template <typename T>
MP3D_HOST_DEVICE T splat_alpha(const Splat<T>& s, T px, T py, T& dx, T& dy, T& power) {
  dx = px - s.u;
  dy = py - s.v;
  const T m = s.a * dx * dx + T(2) * s.b * dx * dy + s.c * dy * dy;
  if (m > s.m_cut) {
    power = T(0);
    return T(0);
  }
  power = s.opacity * exp_(T(-0.5) * m);
  return power < T(kAlphaMax) ? power : T(kAlphaMax);
}

// What one pixel accumulated in the forward pass.
template <typename T>
struct PixelResult {
  T rgb[3];
  T alpha;
  T depth;
  T transmittance;  // after the last Gaussian drawn
  int32_t n_visited;  // splats read before compositing stopped (all of them if it did not)
};

template <typename T>
MP3D_HOST_DEVICE PixelResult<T> rasterize_pixel(const Splat<T>* splats, int64_t count, T px,
                                                T py) {
  PixelResult<T> out = {{T(0), T(0), T(0)}, T(0), T(0), T(1), 0};
  int64_t k = 0;
  for (; k < count; ++k) {
    T dx, dy, power;
    const T alpha = splat_alpha(splats[k], px, py, dx, dy, power);
    if (alpha < T(kAlphaMin)) continue;
    const T next = out.transmittance * (T(1) - alpha);
    if (next < T(kTransmittanceMin)) break;
    const T w = alpha * out.transmittance;
    for (int c = 0; c < 3; ++c) out.rgb[c] += w * splats[k].rgb[c];
    out.alpha += w;
    out.depth += w * splats[k].depth;
    out.transmittance = next;
  }
  out.n_visited = static_cast<int32_t>(k);
  return out;
}

// State of one pixel's back-to-front walk in the backward pass.
template <typename T>
struct BackwardPixel {
  T transmittance;  // after the splat about to be visited
  T behind_rgb[3];  // sum of w_k rgb_k, w_k, w_k depth_k over the splats already visited
  T behind_alpha;
  T behind_depth;
  T grad_rgb[3];    // the pixel's upstream gradients
  T grad_alpha;
  T grad_depth;
};

template <typename T>
MP3D_HOST_DEVICE BackwardPixel<T> backward_pixel(T transmittance, const T* grad_rgb,
                                                 T grad_alpha, T grad_depth) {
  return {transmittance, {T(0), T(0), T(0)}, T(0), T(0),
          {grad_rgb[0], grad_rgb[1], grad_rgb[2]}, grad_alpha, grad_depth};
}

// One step of the backward walk, at a splat drawn at the pixel (alpha >= 1/255, from
// splat_alpha with its dx, dy, power): steps the pixel's state one splat forward and writes
// the splat's gradient from this pixel into grad [kSplatGrads] (overwriting it).
template <typename T>
MP3D_HOST_DEVICE void backward_step(const Splat<T>& s, T dx, T dy, T power, T alpha,
                                    BackwardPixel<T>& p, T* grad) {
  const T one_minus = T(1) - alpha;
  const T T_before = p.transmittance / one_minus;
  const T w = alpha * T_before;
  for (int c = 0; c < 3; ++c) grad[6 + c] = w * p.grad_rgb[c];
  grad[9] = w * p.grad_depth;
  const T own = p.grad_rgb[0] * s.rgb[0] + p.grad_rgb[1] * s.rgb[1] +
                p.grad_rgb[2] * s.rgb[2] + p.grad_alpha + p.grad_depth * s.depth;
  const T behind = p.grad_rgb[0] * p.behind_rgb[0] + p.grad_rgb[1] * p.behind_rgb[1] +
                   p.grad_rgb[2] * p.behind_rgb[2] + p.grad_alpha * p.behind_alpha +
                   p.grad_depth * p.behind_depth;
  const T g_alpha = T_before * own - behind / one_minus;
  for (int c = 0; c < 3; ++c) p.behind_rgb[c] += w * s.rgb[c];
  p.behind_alpha += w;
  p.behind_depth += w * s.depth;
  p.transmittance = T_before;
  if (power > T(kAlphaMax)) {  // capped: flat in opacity and position
    for (int c = 0; c < 6; ++c) grad[c] = T(0);
    return;
  }
  const T g_m = g_alpha * T(-0.5) * alpha;
  grad[0] = -g_m * T(2) * (s.a * dx + s.b * dy);
  grad[1] = -g_m * T(2) * (s.b * dx + s.c * dy);
  grad[2] = g_m * dx * dx;
  grad[3] = g_m * T(2) * dx * dy;
  grad[4] = g_m * dy * dy;
  grad[5] = g_alpha * power / s.opacity;
}

// Adds one pixel's gradient to grads [count, kSplatGrads], walking back to front from the
// pixel's saved transmittance and visit count. grad_rgb [3], grad_alpha, grad_depth are the
// pixel's upstream gradients.
template <typename T>
MP3D_HOST_DEVICE void rasterize_pixel_backward(const Splat<T>* splats, T px, T py,
                                               T transmittance, int32_t n_visited,
                                               const T* grad_rgb, T grad_alpha, T grad_depth,
                                               T* grads) {
  BackwardPixel<T> state = backward_pixel(transmittance, grad_rgb, grad_alpha, grad_depth);
  for (int64_t k = n_visited - 1; k >= 0; --k) {
    T dx, dy, power;
    const T alpha = splat_alpha(splats[k], px, py, dx, dy, power);
    if (alpha < T(kAlphaMin)) continue;
    T grad[kSplatGrads];
    backward_step(splats[k], dx, dy, power, alpha, state, grad);
    for (int c = 0; c < kSplatGrads; ++c) grads[kSplatGrads * k + c] += grad[c];
  }
}

// Pixel columns [x0, x1] (clipped to [col_begin, col_end)) of the row of pixel centres at
// height py where the splat can be drawn: the chord of its ellipse d^T conic d <= m_cut,
// widened by a pixel for rounding. Returns false when the row misses it.
template <typename T>
MP3D_HOST_DEVICE bool row_span(const Splat<T>& s, T py, int64_t col_begin, int64_t col_end,
                               int64_t& x0, int64_t& x1) {
  if (s.m_cut < T(0)) return false;
  x0 = col_begin;
  x1 = col_end - 1;
  if (!(s.a > T(0))) return true;  // not an ellipse: let every pixel take the exact test
  const T dy = py - s.v;
  // a dx^2 + 2 b dy dx + c dy^2 - m_cut <= 0
  const T disc = s.b * s.b * dy * dy - s.a * (s.c * dy * dy - s.m_cut);
  if (disc < T(0)) return false;
  const T root = sqrt_(disc);
  const T lo = s.u + (-s.b * dy - root) / s.a - T(1.5);  // centre x + 0.5 >= lo - 1
  const T hi = s.u + (-s.b * dy + root) / s.a + T(0.5);  // centre x + 0.5 <= hi + 1
  if (hi < T(col_begin) || lo > T(col_end - 1)) return false;
  if (lo > T(col_begin)) x0 = static_cast<int64_t>(ceil_(lo));
  if (hi < T(col_end - 1)) x1 = static_cast<int64_t>(hi);
  return x0 <= x1;
}

}  // namespace gaussians
}  // namespace mp3d
