// The one binding file: declares every mp3d op; kernels register in their own files.
//
// The module itself is a plain Python extension with no functions: importing mp3d._C
// loads the library, whose static initialisers register the ops with torch.
#include <Python.h>
#include <torch/library.h>

namespace {

bool built_with_cuda() {
#ifdef MP3D_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

TORCH_LIBRARY(mp3d, m) {
  m.def("built_with_cuda() -> bool", &built_with_cuda);

  // Volume rendering of packed samples (see csrc/volume_rendering/volume_rendering.h).
  m.def(
      "volume_render_fwd(Tensor sigmas, Tensor? rgbs, Tensor t_starts, Tensor t_ends, "
      "Tensor offsets, float early_stop_eps) -> (Tensor weights, Tensor rgb, Tensor opacity, "
      "Tensor depth)");
  m.def(
      "volume_render_bwd(Tensor? grad_weights, Tensor? grad_rgb, Tensor? grad_opacity, "
      "Tensor? grad_depth, Tensor sigmas, Tensor? rgbs, Tensor t_starts, Tensor t_ends, "
      "Tensor offsets, Tensor weights, float early_stop_eps, bool t_grads) -> "
      "(Tensor grad_sigmas, "
      "Tensor grad_rgbs, Tensor grad_t_starts, Tensor grad_t_ends)");

  // Multiresolution hash encoding (see csrc/hash_encoding/hash_encoding.h); resolutions [L]
  // and offsets [L+1] are int64 CPU tensors describing the level layout.
  m.def(
      "hash_encode_fwd(Tensor points, Tensor embeddings, Tensor resolutions, Tensor offsets) "
      "-> Tensor");
  m.def(
      "hash_encode_bwd(Tensor grad_features, Tensor points, Tensor embeddings, "
      "Tensor resolutions, Tensor offsets, bool points_grad) -> (Tensor grad_embeddings, "
      "Tensor grad_points)");
  // The backward of hash_encode_bwd: given its inputs and the gradients of its outputs
  // (either may be None), the gradients of grad_features, points and embeddings; one not
  // asked for comes back with no rows.
  m.def(
      "hash_encode_bwd_bwd(Tensor grad_features, Tensor points, Tensor embeddings, "
      "Tensor resolutions, Tensor offsets, Tensor? gg_embeddings, Tensor? gg_points, "
      "bool grad_features_grad, bool points_grad, bool embeddings_grad) -> "
      "(Tensor grad_grad_features, Tensor grad_points, Tensor grad_embeddings)");

  // 3D Gaussian splatting (see csrc/gaussians/gaussians.h). Radii are int32, 0 when culled;
  // tile lists are int64 offsets [tiles+1] into int64 Gaussian ids sorted by depth per tile.
  m.def(
      "gaussians_project_fwd(Tensor means, Tensor quats, Tensor scales, Tensor viewmat, "
      "Tensor K, int width, int height, float near) -> (Tensor means2d, Tensor conics, "
      "Tensor depths, Tensor radii)");
  m.def(
      "gaussians_project_bwd(Tensor grad_means2d, Tensor grad_conics, Tensor grad_depths, "
      "Tensor means, Tensor quats, Tensor scales, Tensor viewmat, Tensor K, float near) -> "
      "(Tensor grad_means, Tensor grad_quats, Tensor grad_scales)");
  m.def("gaussians_sh_fwd(Tensor sh, Tensor dirs, int degree) -> Tensor");
  m.def(
      "gaussians_sh_bwd(Tensor grad_colors, Tensor sh, Tensor dirs, int degree, "
      "bool dirs_grad) -> (Tensor grad_sh, Tensor grad_dirs)");
  m.def(
      "gaussians_tile_bin(Tensor means2d, Tensor conics, Tensor opacities, Tensor depths, "
      "Tensor radii, int width, int height, int tile_size) -> (Tensor tile_offsets, "
      "Tensor gaussian_ids)");
  m.def(
      "gaussians_rasterize_fwd(Tensor means2d, Tensor conics, Tensor colors, "
      "Tensor opacities, Tensor depths, Tensor tile_offsets, Tensor gaussian_ids, int width, "
      "int height, int tile_size) -> (Tensor rgb, Tensor alpha, Tensor depth, "
      "Tensor transmittance, Tensor n_visited)");
  m.def(
      "gaussians_rasterize_bwd(Tensor grad_rgb, Tensor grad_alpha, Tensor grad_depth, "
      "Tensor means2d, Tensor conics, Tensor colors, Tensor opacities, Tensor depths, "
      "Tensor tile_offsets, Tensor gaussian_ids, Tensor transmittance, Tensor n_visited, "
      "int width, int height, int tile_size) -> (Tensor grad_means2d, Tensor grad_conics, "
      "Tensor grad_colors, Tensor grad_opacities, Tensor grad_depths)");

  // Linear blend skinning (see csrc/skinning/skinning.h): vertices [B,V,3] or [V,3] (shared),
  // weights [V,J], transforms [B,J,4,4] -> posed [B,V,3]. A gradient not asked for comes back
  // as an empty tensor; grad_vertices has the shape of vertices.
  m.def("lbs_fwd(Tensor vertices, Tensor weights, Tensor transforms) -> Tensor");
  m.def(
      "lbs_bwd(Tensor grad_posed, Tensor vertices, Tensor weights, Tensor transforms, "
      "bool vertices_grad, bool weights_grad, bool transforms_grad) -> (Tensor grad_vertices, "
      "Tensor grad_weights, Tensor grad_transforms)");

  // Occupancy-grid ray march (see csrc/ray_marching/ray_marching_cpu.cpp; CPU only): rays
  // [R,3], their entry, exit and first-step offset [R], occupied [res,res,res] bool over aabb
  // [6] -> the kept steps packed in ray order: t_starts [S], t_ends [S], ray_indices [S].
  m.def(
      "march_occupancy(Tensor origins, Tensor directions, Tensor entry, Tensor exit, "
      "Tensor offsets, Tensor occupied, Tensor aabb, float step_size, int n_steps) -> "
      "(Tensor t_starts, Tensor t_ends, Tensor ray_indices)");

  // Forward kinematics (see csrc/skinning/kinematics.h; CPU only): rotations [B,J,3]
  // (axis-angle) or [B,J,3,3], rest joints [B,J,3], parents [J] int64 -> local rotation
  // matrices [B,J,3,3], world transforms [B,J,4,4], skinning transforms [B,J,4,4].
  m.def(
      "kinematics_fwd(Tensor rotations, Tensor joints, Tensor parents) -> (Tensor rot_mats, "
      "Tensor world, Tensor skin)");
  m.def(
      "kinematics_bwd(Tensor grad_rot_mats, Tensor grad_world, Tensor grad_skin, "
      "Tensor rotations, Tensor joints, Tensor parents) -> (Tensor grad_rotations, "
      "Tensor grad_joints)");

  // The training SSIM of images [H,W,C] (see csrc/ssim/ssim_cpu.cpp; CPU only): its mean over
  // the valid region and, with need_grad, its gradient in `prediction` (else an empty tensor).
  m.def(
      "ssim_fwd(Tensor prediction, Tensor target, bool need_grad) -> (Tensor value, "
      "Tensor grad)");
}

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
