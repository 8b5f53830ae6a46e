// What convspark.cu needs from CUDA, for compiling it as ordinary C++ on the host: the thread and
// block indices of the thread being emulated, __syncthreads, __shared__ and the few device
// functions the kernels call. Only for the emulated driver (driver.cpp); never for a real GPU.
#pragma once
#include <cmath>

namespace emu {
struct uint3 {
  unsigned x, y, z;
};
struct Thread;
extern Thread* current;
extern uint3 block_idx, block_dim, grid_dim;
const uint3& thread_idx();
void syncthreads();
}  // namespace emu

#define __global__
#define __device__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
// One block runs at a time, so function-level statics are the block's shared memory.
#define __shared__ static
#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __syncthreads() emu::syncthreads()
#define __launch_bounds__(...)

// CUDA's vector type, as the kernels read it: four floats, 16-byte aligned.
struct alignas(16) float4 {
  float x, y, z, w;
};

// CUDA's integer min, a device function.
inline int min(int a, int b) { return a < b ? a : b; }

// The emulated threads of a block take turns on one OS thread: a read-modify-write is atomic.
inline float atomicAdd(float* address, float value) {
  float old = *address;
  *address = old + value;
  return old;
}
