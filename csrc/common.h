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

// exp, log, sqrt and ceil for float and double that pick the right function on host and
// device.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float exp_(float x) { return ::expf(x); }
__device__ __forceinline__ double exp_(double x) { return ::exp(x); }
__device__ __forceinline__ float log_(float x) { return ::logf(x); }
__device__ __forceinline__ double log_(double x) { return ::log(x); }
__device__ __forceinline__ float sqrt_(float x) { return ::sqrtf(x); }
__device__ __forceinline__ double sqrt_(double x) { return ::sqrt(x); }
__device__ __forceinline__ float ceil_(float x) { return ::ceilf(x); }
__device__ __forceinline__ double ceil_(double x) { return ::ceil(x); }
#else
inline float exp_(float x) { return std::exp(x); }
inline double exp_(double x) { return std::exp(x); }
inline float log_(float x) { return std::log(x); }
inline double log_(double x) { return std::log(x); }
inline float sqrt_(float x) { return std::sqrt(x); }
inline double sqrt_(double x) { return std::sqrt(x); }
inline float ceil_(float x) { return std::ceil(x); }
inline double ceil_(double x) { return std::ceil(x); }
#endif

}  // namespace mp3d
