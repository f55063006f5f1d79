// Forward kinematics of a kinematic tree, with Rodrigues' formula for axis-angle joint
// rotations: the math of one batch element, forward and backward (reverse mode).
//
// Joint j has a local rotation R_j (given as a matrix, or R_j = exp(skew(v_j)) of an
// axis-angle vector v_j), a rest position J_j and a parent p(j) < j (-1 for the root, joint 0).
// World transforms G_j = [GR_j | Gt_j] (3x4 here, bottom row [0 0 0 1]):
//   GR_0 = R_0,          Gt_0 = J_0
//   GR_j = GR_p R_j,     Gt_j = GR_p (J_j - J_p) + Gt_p
// and skinning transforms A_j = G_j G_j(theta_0)^-1 = [GR_j | Gt_j - GR_j J_j], which move
// the rest joint J_j to the posed one.
//
// Rodrigues: R = I + a K + b K^2, K = skew(v), t = |v|, a = sin(t)/t, b = (1 - cos t)/t^2.
// Its vector-Jacobian product with G = dL/dR, using dK/dv_i = E_i = skew(e_i),
// <G, E_i> = w(G)_i with w(G) = (G21 - G12, G02 - G20, G10 - G01), and ca = a'(t)/t,
// cb = b'(t)/t:
//   dL/dv = v (ca <G, K> + cb <G, K^2>) + a w(G) - b w(G K + K G)
// (the last term: <G, E_i K + K E_i> = <G K^T + K^T G, E_i> with K^T = -K). Below
// kSeriesAngle the four coefficients come from their Taylor series, so v = 0 is exact.
// All of it runs in double whatever the tensors' dtype: a batch element is 24 joints' worth
// of 3x3 products, and the closed forms of ca and cb cancel badly in float32.
#pragma once

#include <cmath>
#include <cstdint>

namespace mp3d {
namespace kinematics {

constexpr double kSeriesAngleSq = 1e-4;  // t < 1e-2: series terms beyond t^4 are < 1e-16

// The coefficients a, b (and, for the backward, ca, cb) of Rodrigues' formula at t^2 = t2.
inline void rodrigues_coefficients(double t2, double& a, double& b, double* ca, double* cb) {
  if (t2 < kSeriesAngleSq) {
    a = 1.0 - t2 / 6.0 + t2 * t2 / 120.0;
    b = 0.5 - t2 / 24.0 + t2 * t2 / 720.0;
    if (ca) *ca = -1.0 / 3.0 + t2 / 30.0 - t2 * t2 / 840.0;
    if (cb) *cb = -1.0 / 12.0 + t2 / 180.0 - t2 * t2 / 6720.0;
    return;
  }
  const double t = std::sqrt(t2), s = std::sin(t), c = std::cos(t), sh = std::sin(0.5 * t);
  const double one_minus_cos = 2.0 * sh * sh;  // 1 - cos t without cancellation
  a = s / t;
  b = one_minus_cos / t2;
  if (ca) *ca = (t * c - s) / (t2 * t);                      // (d/dt sin(t)/t) / t
  if (cb) *cb = (t * s - 2.0 * one_minus_cos) / (t2 * t2);  // (d/dt (1-cos t)/t^2) / t
}

// R (row-major 3x3) of the axis-angle vector v.
inline void rodrigues(const double v[3], double R[9]) {
  const double t2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
  double a, b;
  rodrigues_coefficients(t2, a, b, nullptr, nullptr);
  const double c = 1.0 - b * t2;  // cos t
  // R = cos(t) I + a K + b v v^T (the same as I + a K + b K^2, since K^2 = v v^T - t^2 I).
  R[0] = c + b * v[0] * v[0];
  R[1] = b * v[0] * v[1] - a * v[2];
  R[2] = b * v[0] * v[2] + a * v[1];
  R[3] = b * v[0] * v[1] + a * v[2];
  R[4] = c + b * v[1] * v[1];
  R[5] = b * v[1] * v[2] - a * v[0];
  R[6] = b * v[0] * v[2] - a * v[1];
  R[7] = b * v[1] * v[2] + a * v[0];
  R[8] = c + b * v[2] * v[2];
}

// dL/dv of R(v), given G = dL/dR (row-major 3x3).
inline void rodrigues_vjp(const double v[3], const double G[9], double grad_v[3]) {
  const double t2 = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
  double a, b, ca, cb;
  rodrigues_coefficients(t2, a, b, &ca, &cb);
  const double K[9] = {0.0, -v[2], v[1], v[2], 0.0, -v[0], -v[1], v[0], 0.0};
  double K2[9], M[9];  // K^2, and G K + K G
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double k2 = 0.0, m = 0.0;
      for (int k = 0; k < 3; ++k) {
        k2 += K[3 * i + k] * K[3 * k + j];
        m += G[3 * i + k] * K[3 * k + j] + K[3 * i + k] * G[3 * k + j];
      }
      K2[3 * i + j] = k2;
      M[3 * i + j] = m;
    }
  double gk = 0.0, gk2 = 0.0;
  for (int c = 0; c < 9; ++c) {
    gk += G[c] * K[c];
    gk2 += G[c] * K2[c];
  }
  const double radial = ca * gk + cb * gk2;
  const double wg[3] = {G[7] - G[5], G[2] - G[6], G[3] - G[1]};
  const double wm[3] = {M[7] - M[5], M[2] - M[6], M[3] - M[1]};
  for (int i = 0; i < 3; ++i) grad_v[i] = v[i] * radial + a * wg[i] - b * wm[i];
}

// C = A B, or C = A^T B with transpose_a, for row-major 3x3 matrices (C is not A or B).
inline void matmul3(const double* A, const double* B, double* C, bool transpose_a = false) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = 0.0;
      for (int k = 0; k < 3; ++k) s += (transpose_a ? A[3 * k + i] : A[3 * i + k]) * B[3 * k + j];
      C[3 * i + j] = s;
    }
}

}  // namespace kinematics
}  // namespace mp3d
