// Shared helpers for mp3d kernels: host/device qualifiers and input checks.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>

#if defined(__CUDACC__)
#define MP3D_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MP3D_HOST_DEVICE inline
#endif

// Second line of defence: the Python wrappers validate first and raise ValueError.
#define MP3D_CHECK_CONTIGUOUS(x) \
  TORCH_CHECK_VALUE((x).is_contiguous(), #x " must be contiguous")
#define MP3D_CHECK_DEVICE(x, like)                                              \
  TORCH_CHECK_VALUE((x).device() == (like).device(), #x " must be on device ", \
                    (like).device(), ", got ", (x).device())
#define MP3D_CHECK_DTYPE(x, dtype)                                           \
  TORCH_CHECK_VALUE((x).scalar_type() == (dtype), #x " must have dtype ", \
                    (dtype), ", got ", (x).scalar_type())

namespace mp3d {

// exp for float and double that picks the right function on host and device.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float exp_(float x) { return ::expf(x); }
__device__ __forceinline__ double exp_(double x) { return ::exp(x); }
#else
inline float exp_(float x) { return std::exp(x); }
inline double exp_(double x) { return std::exp(x); }
#endif

}  // namespace mp3d
