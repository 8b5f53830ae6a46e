// What convspark.cu uses of CUDA's WMMA (nvcuda::wmma: TF32 fragments m16n16k8), for the emulated
// driver. A GPU spreads a fragment over the 32 threads of a warp in a layout of its own; here every
// thread holds the whole matrix and does the whole product, so each thread's loads, products and
// stores give what the warp's would, whatever the layout. Only for driver.cpp; never for a GPU.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>

namespace emu {
// Defined by the driver: records a warp-wide call by the current thread (driver.cpp, run_block).
void warp_collective(uint64_t what);
// One call and its arguments, as a number for warp_collective.
inline uint64_t call(int which, const void* p = nullptr, unsigned ldm = 0, int layout = 0) {
  return (reinterpret_cast<uintptr_t>(p) * 31 + ldm) * 31 * 8 + which * 8 + layout;
}
}  // namespace emu

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K>
struct Shape;
template <int M, int N, int K>
struct Shape<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct Shape<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct Shape<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static constexpr int rows = Shape<Use, M, N, K>::rows, cols = Shape<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  float x[rows * cols];  // row-major
};

// TF32: 10 bits of mantissa, rounded to nearest with ties away from zero (cvt.rna.tf32.f32);
// infinities and NaN as they are.
inline float __float_to_tf32(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&f, &u, 4);
  return f;
}

// What a GPU requires of load_matrix_sync's and store_matrix_sync's memory: a 256-bit aligned
// pointer, and a leading dimension of a multiple of 16 bytes (4 floats). Elsewhere the result is
// undefined; here the process stops, saying which call.
inline void check_matrix(const float* p, unsigned ldm, const char* call) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || ldm % 4 != 0) {
    std::fprintf(stderr, "cuda-emu: wmma::%s at %p with ldm %u: the pointer must be 32-byte aligned and ldm a "
                 "multiple of 4 floats\n", call, static_cast<const void*>(p), ldm);
    std::abort();
  }
}

template <class Use, int M, int N, int K, class T, class Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const float* p, unsigned ldm) {
  check_matrix(p, ldm, "load_matrix_sync");
  emu::warp_collective(emu::call(1, p, ldm, std::is_same<Layout, col_major>::value));
  for (int r = 0; r < f.rows; r++)
    for (int c = 0; c < f.cols; c++)
      f.x[r * f.cols + c] = std::is_same<Layout, col_major>::value ? p[r + (size_t) c * ldm] : p[(size_t) r * ldm + c];
}

template <int M, int N, int K, class T>
void fill_fragment(fragment<accumulator, M, N, K, T>& f, float v) {
  for (int i = 0; i < f.num_elements; i++) f.x[i] = v;
}

// d = a b + c, each entry's products summed in k's order in float32.
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  emu::warp_collective(emu::call(3));
  float out[M * N];
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float s = c.x[i * N + j];
      for (int q = 0; q < K; q++) s = fmaf(a.x[i * K + q], b.x[q * N + j], s);
      out[i * N + j] = s;
    }
  std::memcpy(d.x, out, sizeof out);
}

template <int M, int N, int K, class T>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout) {
  check_matrix(p, ldm, "store_matrix_sync");
  emu::warp_collective(emu::call(2, p, ldm, layout));
  for (int r = 0; r < M; r++)
    for (int c = 0; c < N; c++) {
      float v = f.x[r * N + c];
      if (layout == mem_row_major) {
        p[(size_t) r * ldm + c] = v;
      } else {
        p[r + (size_t) c * ldm] = v;
      }
    }
}

}  // namespace wmma
}  // namespace nvcuda
