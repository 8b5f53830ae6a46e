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
void syncthreads(int line);
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
// The barrier's line in the source, so that the driver can tell one __syncthreads from another.
#define __syncthreads() emu::syncthreads(__LINE__)
#define __launch_bounds__(...)

// CUDA's vector type, as the kernels read it: four floats, 16-byte aligned.
struct alignas(16) float4 {
  float x, y, z, w;
};

// A 16-byte load from an address a GPU would fault on: stop, saying where.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#define EMU_CHECK_ALIGNED(p)                                                                          \
  do {                                                                                                \
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {                                                   \
      std::fprintf(stderr, "cuda-emu: a 16-byte load from %p (not 16-byte aligned) in %s\n",          \
                   static_cast<const void*>(p), __func__);                                             \
      std::abort();                                                                                   \
    }                                                                                                 \
  } while (0)

// A loader's kept position (a window's entry, an output pixel) that is not where the slice it
// loads says: stop, saying where (a GPU would load the wrong entries).
#define EMU_CHECK_POSITION(ok)                                                                        \
  do {                                                                                                \
    if (!(ok)) {                                                                                      \
      std::fprintf(stderr, "cuda-emu: a loader's kept position is not where its slice is, in %s "     \
                   "(block %u, %u, %u; thread %u)\n", __func__, emu::block_idx.x, emu::block_idx.y,   \
                   emu::block_idx.z, threadIdx.x);                                                    \
      std::abort();                                                                                   \
    }                                                                                                 \
  } while (0)

// CUDA's integer min, a device function.
inline int min(int a, int b) { return a < b ? a : b; }

// The emulated threads of a block take turns on one OS thread: a read-modify-write is atomic.
inline float atomicAdd(float* address, float value) {
  float old = *address;
  *address = old + value;
  return old;
}
