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
}

extern "C" PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module);
}
