// C++ CPU kernels for forward kinematics (kinematics.h): one task per range of batch
// elements, each element's chain walked in double precision in a few kilobytes of scratch.
//
// SMPL fitting calls these thousands of times on a handful of bodies: there the torch
// version's ~100 small tensor ops per call (and as many autograd nodes) cost far more than
// the arithmetic, which is about 24 3x3 products per body. Here one call is one node.
//
// The schemas are in csrc/mp3d.cpp with the others; there is no CUDA kernel, so CUDA tensors
// use the torch reference (mp3d.ops.skinning).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <tuple>
#include <vector>

#include "../common.h"
#include "kinematics.h"

namespace mp3d {
namespace kinematics {
namespace {

using at::Tensor;

constexpr int64_t kGrain = 16;  // batch elements per task

// Checks the tensors (second line of defence: mp3d.ops.skinning validates first) and the
// parents, which index memory here: parents[0] = -1 and 0 <= parents[j] < j otherwise.
// Returns whether the rotations are axis-angle vectors ([B,J,3]) rather than matrices.
bool check_inputs(const Tensor& rotations, const Tensor& joints, const Tensor& parents) {
  MP3D_CHECK_CONTIGUOUS(rotations);
  MP3D_CHECK_CONTIGUOUS(joints);
  MP3D_CHECK_CONTIGUOUS(parents);
  TORCH_CHECK_VALUE(joints.device().is_cpu(), "joints must be a CPU tensor, got ",
                    joints.device());
  MP3D_CHECK_DEVICE(rotations, joints);
  MP3D_CHECK_DEVICE(parents, joints);
  TORCH_CHECK_VALUE(joints.scalar_type() == at::kFloat || joints.scalar_type() == at::kDouble,
                    "joints must be float32 or float64, got ", joints.scalar_type());
  MP3D_CHECK_DTYPE(rotations, joints.scalar_type());
  MP3D_CHECK_DTYPE(parents, at::kLong);
  TORCH_CHECK_VALUE(joints.dim() == 3 && joints.size(2) == 3, "joints must have shape [B, J, 3], got ",
                    joints.sizes());
  const int64_t n_batch = joints.size(0), n_joints = joints.size(1);
  const bool axis_angle = rotations.dim() == 3;
  TORCH_CHECK_VALUE(
      rotations.size(0) == n_batch && rotations.size(1) == n_joints &&
          ((axis_angle && rotations.size(2) == 3) ||
           (rotations.dim() == 4 && rotations.size(2) == 3 && rotations.size(3) == 3)),
      "rotations must have shape [", n_batch, ", ", n_joints, ", 3] or [", n_batch, ", ",
      n_joints, ", 3, 3], got ", rotations.sizes());
  TORCH_CHECK_VALUE(parents.dim() == 1 && parents.size(0) == n_joints,
                    "parents must have shape [", n_joints, "], got ", parents.sizes());
  const int64_t* p = parents.data_ptr<int64_t>();
  for (int64_t j = 0; j < n_joints; ++j)
    TORCH_CHECK_VALUE(j == 0 ? p[0] == -1 : (p[j] >= 0 && p[j] < j),
                      "parents must list each joint after its parent (parents[0] = -1, 0 <= "
                      "parents[j] < j), got parents[", j, "] = ", p[j]);
  return axis_angle;
}

// The local rotation of joint j of one batch element, from either kind of input.
template <typename scalar_t>
void local_rotation(const scalar_t* rotations, bool axis_angle, int64_t j, double R[9]) {
  if (axis_angle) {
    const double v[3] = {double(rotations[3 * j]), double(rotations[3 * j + 1]),
                         double(rotations[3 * j + 2])};
    rodrigues(v, R);
  } else {
    for (int c = 0; c < 9; ++c) R[c] = double(rotations[9 * j + c]);
  }
}

// Local rotations R [J*9] and world transforms GR [J*9], Gt [J*3] of one batch element.
template <typename scalar_t>
void chain(const scalar_t* rotations, bool axis_angle, const scalar_t* joints,
           const int64_t* parents, int64_t n_joints, double* R, double* GR, double* Gt) {
  for (int64_t j = 0; j < n_joints; ++j) {
    local_rotation(rotations, axis_angle, j, R + 9 * j);
    const int64_t p = parents[j];
    if (p < 0) {
      for (int c = 0; c < 9; ++c) GR[9 * j + c] = R[9 * j + c];
      for (int i = 0; i < 3; ++i) Gt[3 * j + i] = double(joints[3 * j + i]);
      continue;
    }
    matmul3(GR + 9 * p, R + 9 * j, GR + 9 * j);
    double offset[3];
    for (int i = 0; i < 3; ++i) offset[i] = double(joints[3 * j + i]) - double(joints[3 * p + i]);
    for (int i = 0; i < 3; ++i) {
      const double* row = GR + 9 * p + 3 * i;
      Gt[3 * j + i] = row[0] * offset[0] + row[1] * offset[1] + row[2] * offset[2] + Gt[3 * p + i];
    }
  }
}

std::tuple<Tensor, Tensor, Tensor> forward_cpu(const Tensor& rotations, const Tensor& joints,
                                               const Tensor& parents) {
  const bool axis_angle = check_inputs(rotations, joints, parents);
  const int64_t n_batch = joints.size(0), n_joints = joints.size(1);
  const auto opts = joints.options();
  Tensor rot_mats = at::empty({n_batch, n_joints, 3, 3}, opts);
  Tensor world = at::empty({n_batch, n_joints, 4, 4}, opts);
  Tensor skin = at::empty({n_batch, n_joints, 4, 4}, opts);
  if (n_batch == 0 || n_joints == 0) return {rot_mats, world, skin};
  const int64_t* par = parents.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(joints.scalar_type(), "kinematics_fwd_cpu", [&] {
    const scalar_t* rot = rotations.data_ptr<scalar_t>();
    const scalar_t* jts = joints.data_ptr<scalar_t>();
    scalar_t* out_r = rot_mats.data_ptr<scalar_t>();
    scalar_t* out_w = world.data_ptr<scalar_t>();
    scalar_t* out_s = skin.data_ptr<scalar_t>();
    const int64_t rot_stride = n_joints * (axis_angle ? 3 : 9);
    at::parallel_for(0, n_batch, kGrain, [&](int64_t begin, int64_t end) {
      std::vector<double> scratch(21 * n_joints);
      double *R = scratch.data(), *GR = R + 9 * n_joints, *Gt = GR + 9 * n_joints;
      for (int64_t b = begin; b < end; ++b) {
        const scalar_t* jb = jts + b * 3 * n_joints;
        chain(rot + b * rot_stride, axis_angle, jb, par, n_joints, R, GR, Gt);
        for (int64_t j = 0; j < n_joints; ++j) {
          scalar_t* r = out_r + (b * n_joints + j) * 9;
          scalar_t* w = out_w + (b * n_joints + j) * 16;
          scalar_t* s = out_s + (b * n_joints + j) * 16;
          for (int c = 0; c < 9; ++c) r[c] = scalar_t(R[9 * j + c]);
          for (int i = 0; i < 3; ++i) {
            const double* g = GR + 9 * j + 3 * i;
            const double moved = Gt[3 * j + i] - (g[0] * double(jb[3 * j]) +
                                                  g[1] * double(jb[3 * j + 1]) +
                                                  g[2] * double(jb[3 * j + 2]));
            for (int k = 0; k < 3; ++k) w[4 * i + k] = s[4 * i + k] = scalar_t(g[k]);
            w[4 * i + 3] = scalar_t(Gt[3 * j + i]);
            s[4 * i + 3] = scalar_t(moved);
          }
          for (int k = 0; k < 4; ++k) w[12 + k] = s[12 + k] = scalar_t(k == 3 ? 1 : 0);
        }
      }
    });
  });
  return {rot_mats, world, skin};
}

// Gradients of the rotations (the shape of rotations) and joints [B,J,3] from those of
// rot_mats [B,J,3,3], world [B,J,4,4] and skin [B,J,4,4] (their bottom rows are constants
// and get none). The chain is recomputed in double rather than read back from the outputs.
std::tuple<Tensor, Tensor> backward_cpu(const Tensor& grad_rot_mats, const Tensor& grad_world,
                                        const Tensor& grad_skin, const Tensor& rotations,
                                        const Tensor& joints, const Tensor& parents) {
  const bool axis_angle = check_inputs(rotations, joints, parents);
  const int64_t n_batch = joints.size(0), n_joints = joints.size(1);
  const std::pair<const Tensor*, const char*> grads[3] = {
      {&grad_rot_mats, "grad_rot_mats"}, {&grad_world, "grad_world"}, {&grad_skin, "grad_skin"}};
  for (const auto& [grad, name] : grads) {
    const int64_t cols = grad == &grad_rot_mats ? 3 : 4;
    TORCH_CHECK_VALUE(grad->is_contiguous() && grad->scalar_type() == joints.scalar_type() &&
                          grad->device() == joints.device() && grad->dim() == 4 &&
                          grad->size(0) == n_batch && grad->size(1) == n_joints &&
                          grad->size(2) == cols && grad->size(3) == cols,
                      name, " must be a contiguous ", joints.scalar_type(), " tensor of shape [",
                      n_batch, ", ", n_joints, ", ", cols, ", ", cols, "], got ", grad->sizes());
  }
  Tensor grad_rotations = at::empty(rotations.sizes(), joints.options());
  Tensor grad_joints = at::empty(joints.sizes(), joints.options());
  if (n_batch == 0 || n_joints == 0) return {grad_rotations, grad_joints};
  const int64_t* par = parents.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(joints.scalar_type(), "kinematics_bwd_cpu", [&] {
    const scalar_t* rot = rotations.data_ptr<scalar_t>();
    const scalar_t* jts = joints.data_ptr<scalar_t>();
    const scalar_t* g_r = grad_rot_mats.data_ptr<scalar_t>();
    const scalar_t* g_w = grad_world.data_ptr<scalar_t>();
    const scalar_t* g_s = grad_skin.data_ptr<scalar_t>();
    scalar_t* out_rot = grad_rotations.data_ptr<scalar_t>();
    scalar_t* out_j = grad_joints.data_ptr<scalar_t>();
    const int64_t rot_stride = n_joints * (axis_angle ? 3 : 9);
    at::parallel_for(0, n_batch, kGrain, [&](int64_t begin, int64_t end) {
      std::vector<double> scratch(48 * n_joints);
      double *R = scratch.data(), *GR = R + 9 * n_joints, *Gt = GR + 9 * n_joints;
      double *dR = Gt + 3 * n_joints, *dGR = dR + 9 * n_joints, *dGt = dGR + 9 * n_joints;
      double* dJ = dGt + 3 * n_joints;
      for (int64_t b = begin; b < end; ++b) {
        const scalar_t* rb = rot + b * rot_stride;
        const scalar_t* jb = jts + b * 3 * n_joints;
        chain(rb, axis_angle, jb, par, n_joints, R, GR, Gt);
        // Seeds: the outputs' own gradients; skin's translation Gt_j - GR_j J_j adds to
        // Gt_j's, takes -gt J_j^T from GR_j's and -GR_j^T gt from J_j's.
        for (int64_t j = 0; j < n_joints; ++j) {
          const scalar_t* gw = g_w + (b * n_joints + j) * 16;
          const scalar_t* gs = g_s + (b * n_joints + j) * 16;
          const scalar_t* gr = g_r + (b * n_joints + j) * 9;
          const double J[3] = {double(jb[3 * j]), double(jb[3 * j + 1]), double(jb[3 * j + 2])};
          for (int c = 0; c < 9; ++c) dR[9 * j + c] = double(gr[c]);
          for (int k = 0; k < 3; ++k) dJ[3 * j + k] = 0.0;
          for (int i = 0; i < 3; ++i) {
            const double gt = double(gs[4 * i + 3]);
            dGt[3 * j + i] = double(gw[4 * i + 3]) + gt;
            for (int k = 0; k < 3; ++k) {
              dGR[9 * j + 3 * i + k] =
                  double(gw[4 * i + k]) + double(gs[4 * i + k]) - gt * J[k];
              dJ[3 * j + k] -= GR[9 * j + 3 * i + k] * gt;
            }
          }
        }
        // Children before parents: a joint's dGR and dGt are complete when it is reached.
        for (int64_t j = n_joints - 1; j >= 0; --j) {
          const int64_t p = par[j];
          double* dgr = dGR + 9 * j;
          double* dgt = dGt + 3 * j;
          if (p < 0) {
            for (int c = 0; c < 9; ++c) dR[9 * j + c] += dgr[c];
            for (int i = 0; i < 3; ++i) dJ[3 * j + i] += dgt[i];
            continue;
          }
          const double* gp = GR + 9 * p;
          const double* r = R + 9 * j;
          double offset[3], d_offset[3], tmp[9];
          for (int i = 0; i < 3; ++i) offset[i] = double(jb[3 * j + i]) - double(jb[3 * p + i]);
          // GR_j = GR_p R_j: dGR_p += dGR_j R_j^T, dR_j += GR_p^T dGR_j.
          matmul3(gp, dgr, tmp, /*transpose_a=*/true);
          for (int c = 0; c < 9; ++c) dR[9 * j + c] += tmp[c];
          // Gt_j = GR_p offset + Gt_p: dGR_p += dGt_j offset^T, d offset = GR_p^T dGt_j.
          for (int i = 0; i < 3; ++i) {
            for (int k = 0; k < 3; ++k) {
              double s = dgt[i] * offset[k];
              for (int m = 0; m < 3; ++m) s += dgr[3 * i + m] * r[3 * k + m];
              dGR[9 * p + 3 * i + k] += s;
            }
            dGt[3 * p + i] += dgt[i];
          }
          for (int k = 0; k < 3; ++k)
            d_offset[k] = gp[k] * dgt[0] + gp[3 + k] * dgt[1] + gp[6 + k] * dgt[2];
          for (int k = 0; k < 3; ++k) {
            dJ[3 * j + k] += d_offset[k];
            dJ[3 * p + k] -= d_offset[k];
          }
        }
        for (int64_t j = 0; j < n_joints; ++j) {
          for (int k = 0; k < 3; ++k) out_j[(b * n_joints + j) * 3 + k] = scalar_t(dJ[3 * j + k]);
          if (axis_angle) {
            const double v[3] = {double(rb[3 * j]), double(rb[3 * j + 1]), double(rb[3 * j + 2])};
            double gv[3];
            rodrigues_vjp(v, dR + 9 * j, gv);
            for (int k = 0; k < 3; ++k) out_rot[(b * n_joints + j) * 3 + k] = scalar_t(gv[k]);
          } else {
            for (int c = 0; c < 9; ++c) out_rot[(b * n_joints + j) * 9 + c] = scalar_t(dR[9 * j + c]);
          }
        }
      }
    });
  });
  return {grad_rotations, grad_joints};
}

}  // namespace
}  // namespace kinematics
}  // namespace mp3d

TORCH_LIBRARY_IMPL(mp3d, CPU, m) {
  m.impl("kinematics_fwd", &mp3d::kinematics::forward_cpu);
  m.impl("kinematics_bwd", &mp3d::kinematics::backward_cpu);
}
