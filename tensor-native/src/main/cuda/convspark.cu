// convspark's GPU kernels, float32, row-major, images in NHWC: what CudaBackend launches.
// Compiled to PTX by tensor-native/build-ptx.sh (needs nvcc) into
// src/main/resources/dev/convspark/tensor/cuda/convspark.ptx, which is committed; a test checks
// that it is what this file gives wherever nvcc exists. Only extern "C" kernels, so the names in
// the PTX are the names below. Every kernel guards its index: the host rounds grids up.

#define TM 64
#define TN 64
#define TK 16

__device__ __forceinline__ float load_a(const float* a, int trans, int lda, int row, int k, int m, int kk) {
  if (row >= m || k >= kk) return 0.f;
  return trans ? a[(long long) k * lda + row] : a[(long long) row * lda + k];
}

__device__ __forceinline__ float load_b(const float* b, int trans, int ldb, int k, int col, int kk, int n) {
  if (k >= kk || col >= n) return 0.f;
  return trans ? b[(long long) col * ldb + k] : b[(long long) k * ldb + col];
}

// What a product's entry becomes: plus the bias of its column, plus beta times the old entry,
// through a ReLU (v > 0 ? v : 0, as the CPU's fused ReLU).
__device__ __forceinline__ float epilogue(float v, const float* bias, int col, float beta, const float* c,
                                          long long o, int relu) {
  if (bias != 0) v += bias[col];
  if (beta != 0.f) v += beta * c[o];
  return relu && !(v > 0.f) ? 0.f : v;
}

// One thread's share of loading a TK-deep slice of A's and B's tiles: 4 values of each (64 x 16
// values per tile, 256 threads), read from global memory into registers.
__device__ __forceinline__ void fetch_tiles(float* ra, float* rb, const float* a, int trans_a, int lda,
                                            const float* b, int trans_b, int ldb, int row0, int col0, int k0,
                                            int m, int n, int k_end) {
#pragma unroll
  for (int e = 0; e < 4; e++) {
    int i = threadIdx.x + 256 * e;
    int r = trans_a ? i % TM : i / TK;
    int q = trans_a ? i / TM : i % TK;
    ra[e] = load_a(a, trans_a, lda, row0 + r, k0 + q, m, k_end);
    q = trans_b ? i % TK : i / TN;
    int col = trans_b ? i / TK : i % TN;
    rb[e] = load_b(b, trans_b, ldb, k0 + q, col0 + col, k_end, n);
  }
}

// Rows of the shared tiles: 4 floats of padding keep each row 16-byte aligned for the float4
// reads below (a thread's 4 rows of A and 4 columns of B at each q).
#define TP (TM + 4)

// Stores what fetch_tiles read into one of the two shared buffers, k-major: as[q][row], bs[q][col].
__device__ __forceinline__ void stash_tiles(const float* ra, const float* rb, float (*as)[TP], float (*bs)[TP],
                                            int trans_a, int trans_b) {
#pragma unroll
  for (int e = 0; e < 4; e++) {
    int i = threadIdx.x + 256 * e;
    as[trans_a ? i / TM : i % TK][trans_a ? i % TM : i / TK] = ra[e];
    bs[trans_b ? i % TK : i / TN][trans_b ? i / TK : i % TN] = rb[e];
  }
}

// C[m x n] = op(A)[m x k] * op(B)[k x n] (+ bias[col] where bias is not null) + beta * C, then
// max(., 0) when relu is 1; op transposes when trans is 1. A 64 x 64 tile of C per block of 256
// threads, each thread a 4 x 4 square of it (rows 4 ty to 4 ty + 3, columns 4 tx to 4 tx + 3, read
// from shared memory as one float4 of A and one of B per step of k); C is not read when beta is 0.
// The tiles are double-buffered: while the block multiplies one TK-deep slice from shared memory,
// each thread's loads of the next slice are in flight into registers, stored into the other
// buffer afterwards, so one barrier per slice suffices and global memory's latency is hidden
// behind the arithmetic. Each entry is summed over k in the same order as with one buffer.
// Split over k when the grid has a z extent: block z sums k from z * k_split (a multiple of TK) to
// the next split and writes its m x n partial at c + z * m * ldc (beta 0, no bias, no relu), for
// sum_splits to add up. Grid: (m / 64, n / 64, splits) rounded up, the tiles of rows along x (y
// holds 65,535 of them: 5,350 images of conv1 a step).
// So a product with few output tiles and a long k (a convolution's weight gradient: 1 to 13 tiles,
// k of 9,800 to 39,200 at batch 50) keeps every multiprocessor busy instead of one to thirteen.
extern "C" __global__ void sgemm(int trans_a, int trans_b, int m, int n, int k, const float* a, int lda,
                                 const float* b, int ldb, float beta, float* c, int ldc, int k_split,
                                 const float* bias, int relu) {
  __shared__ __align__(16) float as[2][TK][TP];
  __shared__ __align__(16) float bs[2][TK][TP];
  int tx = threadIdx.x % 16;
  int ty = threadIdx.x / 16;
  int row0 = blockIdx.x * TM;
  int col0 = blockIdx.y * TN;
  int k_begin = blockIdx.z * k_split;
  int k_end = min(k, k_begin + k_split);
  c += (long long) blockIdx.z * m * ldc;
  float acc[4][4];
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 4; j++) acc[i][j] = 0.f;
  float ra[4], rb[4];
  if (k_begin < k_end) {
    fetch_tiles(ra, rb, a, trans_a, lda, b, trans_b, ldb, row0, col0, k_begin, m, n, k_end);
    stash_tiles(ra, rb, as[0], bs[0], trans_a, trans_b);
  }
  __syncthreads();
  int cur = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += TK) {
    // The same for every thread of the block, so each reaches the same barriers.
    bool next = k0 + TK < k_end;
    if (next) fetch_tiles(ra, rb, a, trans_a, lda, b, trans_b, ldb, row0, col0, k0 + TK, m, n, k_end);
#pragma unroll
    for (int q = 0; q < TK; q++) {
      float4 av = *reinterpret_cast<const float4*>(&as[cur][q][4 * ty]);
      float4 bv = *reinterpret_cast<const float4*>(&bs[cur][q][4 * tx]);
      float ar[4] = {av.x, av.y, av.z, av.w};
      float br[4] = {bv.x, bv.y, bv.z, bv.w};
#pragma unroll
      for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier: free to overwrite.
    if (next) stash_tiles(ra, rb, as[cur ^ 1], bs[cur ^ 1], trans_a, trans_b);
    __syncthreads();
    cur ^= 1;
  }
  for (int i = 0; i < 4; i++) {
    int row = row0 + 4 * ty + i;
    if (row >= m) continue;
    for (int j = 0; j < 4; j++) {
      int col = col0 + 4 * tx + j;
      if (col >= n) continue;
      long long o = (long long) row * ldc + col;
      c[o] = epilogue(acc[i][j], bias, col, beta, c, o, relu);
    }
  }
}

// c[r][col] = sum over z of part[z][r][col] (splits partials of rows x cols, in order), then as
// sgemm's epilogue: + bias[col], + beta * c, ReLU.
extern "C" __global__ void sum_splits(const float* part, int splits, int rows, int cols, float beta, float* c,
                                      int ldc, const float* bias, int relu) {
  long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  long long size = (long long) rows * cols;
  if (i >= size) return;
  float s = 0.f;
  for (int z = 0; z < splits; z++) s += part[z * size + i];
  int col = (int) (i % cols);
  long long o = i / cols * ldc + col;
  c[o] = epilogue(s, bias, col, beta, c, o, relu);
}

// ---- Wide tiles: the larger products, and convolutions without a patch matrix ----
//
// A 128 x 64 tile of C per block of 128 threads, each thread 8 x 8 entries of it in four 4 x 4
// squares: rows 4 ty + {0..3} and 64 + 4 ty + {0..3}, columns 4 tx + {0..3} and 32 + 4 tx +
// {0..3} (tx = thread % 8, ty = thread / 8). A warp's reads of one k step from shared memory are
// then two broadcasts of A and two 128-byte rows of B, and each thread does 64 multiply-adds for
// four 16-byte reads (sgemm's 64 x 64 tiles: 16 for two). The tiles are WK = 8 deep and
// double-buffered as in sgemm, and each entry is summed over k in order, as there. Global memory
// is read four values at a time, one 16-byte load where the four lie together, aligned, inside
// the operand, by loaders that know where A's and B's values are: a matrix (plain or
// transposed), or the patches of a convolution's input gathered on the fly, so that the patch
// matrix (conv2's 31 MB at batch 50, 627 MB for 1,000 images) is never written or read.
#define WM 128
#define WN 64
#define WK 8
#define WTHREADS 128
// Shared rows padded by 4 floats: 16-byte aligned, and a warp's stores of four values down the k
// axis (rows r..r+15 at k offsets 4 apart: 4 x 132 and 4 x 68 floats) fall on 32 distinct banks.
#define WP 4

// Four values, the unit each loader fetches.
struct Quad {
  float v[4];
};

__device__ __forceinline__ Quad zero_quad() {
  Quad q = {{0.f, 0.f, 0.f, 0.f}};
  return q;
}

// The emulated driver checks each 16-byte load's alignment (a GPU faults on a misaligned one; the
// CPU the emulator runs on would not).
#ifndef EMU_CHECK_ALIGNED
#define EMU_CHECK_ALIGNED(p)
#endif

__device__ __forceinline__ Quad load_quad(const float* p) {
  EMU_CHECK_ALIGNED(p);
  float4 f = *reinterpret_cast<const float4*>(p);
  Quad q = {{f.x, f.y, f.z, f.w}};
  return q;
}

// p[r][c..c+3] of a row-major matrix of rows x cols (ld floats a row), zeros outside; one 16-byte
// load when vec (ld a multiple of 4 and p 16-byte aligned: the host checks) and all four inside.
__device__ __forceinline__ Quad row_quad(const float* p, int ld, int rows, int cols, int r, int c, bool vec) {
  if (r >= rows) return zero_quad();
  const float* at = p + (long long) r * ld + c;
  if (vec && c + 3 < cols) return load_quad(at);
  Quad q;
#pragma unroll
  for (int j = 0; j < 4; j++) q.v[j] = c + j < cols ? at[j] : 0.f;
  return q;
}

// The 256 quads of an A tile (WM x WK), two a thread (quads t and t + 128, its quads e = 0 and 1
// in the loaders' fetch, e known when compiled so that a loader's arrays stay in registers): quad i is
// A[r][kq..kq+3] along k (r = i / 2, kq = 4 (i % 2)) or A[r..r+3][kq] along m (kq = i / 32,
// r = 4 (i % 32)). Shared as as[k][row].
__device__ __forceinline__ int a_row(int i, bool along_k) { return along_k ? i >> 1 : (i & 31) * 4; }
__device__ __forceinline__ int a_k(int i, bool along_k) { return along_k ? (i & 1) * 4 : i >> 5; }

// Stores q in a k-major shared tile s[k][x] at (kq, x): down k (s[kq..kq+3][x]) when along_k,
// else along x (s[kq][x..x+3], one 16-byte store).
template <int LD>
__device__ __forceinline__ void stash(int x, int kq, bool along_k, const Quad& q, float (*s)[LD]) {
  if (along_k) {
#pragma unroll
    for (int j = 0; j < 4; j++) s[kq + j][x] = q.v[j];
  } else {
    float4 f = {q.v[0], q.v[1], q.v[2], q.v[3]};
    *reinterpret_cast<float4*>(&s[kq][x]) = f;
  }
}

// The quads of a B tile (WK x BN: BN = WN, 128 quads, one a thread; or BN = 32, 64 quads, one
// for each of threads 0 to 63): B[kq][c..c+3] along n (kq = i / (BN / 4), c = 4 (i % (BN / 4)))
// or B[kq..kq+3][c] along k (c = i / 2, kq = 4 (i % 2)). Shared as bs[k][column].
template <int BN>
__device__ __forceinline__ int b_col(int i, bool along_k) { return along_k ? i >> 1 : (i & (BN / 4 - 1)) * 4; }
template <int BN>
__device__ __forceinline__ int b_k(int i, bool along_k) { return along_k ? (i & 1) * 4 : i >> (BN == 64 ? 4 : 3); }

// The loaders: each gives a thread's quads of the slice from k0 (fetch), and is told of the
// block's first slice (start) and, after each fetch, that the next slice is WK further on (next):
// a loader over a convolution's windows keeps where its quads are as it goes, without dividing.

// A as a matrix: m x k row-major (along k), or stored k x m when trans (along m). Quads along
// the stored rows, so that each is contiguous in memory.
struct MatrixA {
  const float* a;
  int trans, lda, m;
  bool vec;
  __device__ bool along_k() const { return !trans; }
  __device__ void start(int) {}
  __device__ void next() {}
  __device__ Quad fetch(int e, int row0, int k0, int k_end) const {
    int i = threadIdx.x + WTHREADS * e;
    int r = row0 + a_row(i, !trans), k = k0 + a_k(i, !trans);
    return trans ? row_quad(a, lda, k_end, m, k, r, vec) : row_quad(a, lda, m, k_end, r, k, vec);
  }
};

// B as a matrix: k x n row-major (along n), or stored n x k when trans (along k); for tiles BN
// columns wide.
template <int BN>
struct MatrixB {
  const float* b;
  int trans, ldb, n;
  bool vec;
  __device__ bool along_k() const { return trans; }
  __device__ void start(int) {}
  __device__ void next() {}
  __device__ Quad fetch(int e, int col0, int k0, int k_end) const {
    int i = threadIdx.x + WTHREADS * e;
    int c = col0 + b_col<BN>(i, trans), k = k0 + b_k<BN>(i, trans);
    return trans ? row_quad(b, ldb, n, k_end, c, k, vec) : row_quad(b, ldb, k_end, n, k, c, vec);
  }
};

// The emulated driver checks that a loader's kept position is where the slice says (a GPU would
// read the wrong entries without a word).
#ifndef EMU_CHECK_POSITION
#define EMU_CHECK_POSITION(ok)
#endif

// A position of three digits, the lowest of base `low_n` and the middle one of base `mid_n`,
// moved d forward along the lowest: what the loaders below keep instead of dividing.
__device__ __forceinline__ void carry(int d, int& low, int low_n, int& mid, int mid_n, int& high) {
  low += d;
  while (low >= low_n) {
    low -= low_n;
    if (++mid == mid_n) {
      mid = 0;
      high++;
    }
  }
}

// Entry q of a convolution's window, (ky kw + kx) ch + c, as (ky, kx, c). A GPU has no integer
// divider: a division by a value known only when the kernel runs is about 20 instructions (a
// reciprocal and its corrections), and the loaders made two to four a quad each slice, 20 to 25
// divisions in each wide convolution's k loop and an eighth to a third of the instructions it
// issues (tensor-native/sass-mix.py). So they divide once, in start, and then step: by WK = 8
// entries a slice, past the channels at most once where ch >= 8.
struct Tap {
  int ky, kx, c;
  __device__ static Tap at(int q, int ch, int kw) {
    int t = q / ch;
    int ky = t / kw;
    Tap p = {ky, t - ky * kw, q - t * ch};
    return p;
  }
  __device__ void advance(int d, int ch, int kw) { carry(d, c, ch, kx, kw, ky); }
  __device__ bool is(int q, int ch, int kw) const {
    Tap p = at(q, ch, kw);
    return p.ky == ky && p.kx == kx && p.c == c;
  }
};

// An output pixel of a convolution: its sample, row and column; stepped forward without dividing
// as Tap is.
struct OutPixel {
  int s, oy, ox;
  __device__ bool is(const OutPixel& p) const { return p.s == s && p.oy == oy && p.ox == ox; }
  __device__ void advance(int d, int oh, int ow) { carry(d, ox, ow, oy, oh, s); }
};

// A convolution's input x (n images of h x w x ch, NHWC) as its windows: rows of A.
struct Windows {
  const float* x;
  int h, w, ch, kw, stride, pad_top, pad_left, oh, ow;
  // The entry at tap p of the window whose top-left corner (outside the image where padded) is
  // (iy0, ix0) in the image at `image`; 0 in the padding. Within an image, offsets are ints: an
  // image holds fewer than 2^31 values (its shape's product is an int on the host).
  __device__ float entry(long long image, int iy0, int ix0, const Tap& p) const {
    int iy = iy0 + p.ky, ix = ix0 + p.kx;
    return iy >= 0 && iy < h && ix >= 0 && ix < w ? x[image + ((iy * w + ix) * ch + p.c)] : 0.f;
  }
  // Entries q..q+3 of a window, q at tap p (those from q_end on are 0): one 16-byte load where
  // ch is a multiple of 4 (vec: then the four are channels of one pixel) and all four are inside.
  __device__ Quad quad(long long image, int iy0, int ix0, Tap p, int q, int q_end, bool vec) const {
    if (vec && q + 3 < q_end) {
      int iy = iy0 + p.ky, ix = ix0 + p.kx;
      if (iy < 0 || iy >= h || ix < 0 || ix >= w) return zero_quad();
      return load_quad(x + image + ((iy * w + ix) * ch + p.c));
    }
    Quad v;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      v.v[j] = q + j < q_end ? entry(image, iy0, ix0, p) : 0.f;
      p.advance(1, ch, kw);
    }
    return v;
  }
  // Output row `row` (sample, out y, out x) as a pixel.
  __device__ OutPixel locate(int row) const {
    int pixels = oh * ow;
    int s = row / pixels;
    int p = row - s * pixels;
    int oy = p / ow;
    OutPixel px = {s, oy, p - oy * ow};
    return px;
  }
  // The offset of a pixel's image in x.
  __device__ long long image(const OutPixel& p) const { return (long long) p.s * h * w * ch; }
  __device__ int iy0(const OutPixel& p) const { return p.oy * stride - pad_top; }
  __device__ int ix0(const OutPixel& p) const { return p.ox * stride - pad_left; }
};

// A as the patch matrix of a convolution (rows: output pixels; columns: window entries), read
// from x: along k. A thread's two quads keep their rows from slice to slice (located once) and
// share their entry along k (a_k of t and t + 128 are one), kept as a Tap.
struct PatchesA {
  Windows win;
  int m;
  bool vec;
  long long image[2];
  int iy0[2], ix0[2];
  Tap tap;
  __device__ PatchesA(const Windows& wn, int rows, bool v, int row0) : win(wn), m(rows), vec(v) {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      int r = row0 + a_row(threadIdx.x + WTHREADS * e, true);
      OutPixel p = win.locate(r < m ? r : 0);
      image[e] = win.image(p);
      iy0[e] = win.iy0(p);
      ix0[e] = win.ix0(p);
    }
  }
  __device__ bool along_k() const { return true; }
  __device__ void start(int k0) { tap = Tap::at(k0 + a_k(threadIdx.x, true), win.ch, win.kw); }
  __device__ void next() { tap.advance(WK, win.ch, win.kw); }
  __device__ Quad fetch(int e, int row0, int k0, int k_end) const {
    int i = threadIdx.x + WTHREADS * e;
    int q = k0 + a_k(i, true);
    EMU_CHECK_POSITION(tap.is(q, win.ch, win.kw));
    if (row0 + a_row(i, true) >= m) return zero_quad();
    return win.quad(image[e], iy0[e], ix0[e], tap, q, k_end, vec);
  }
};

// A as the patch matrix transposed (a weight gradient's col^T: rows are window entries, k runs
// over output pixels), read from x: along m, four entries of one output pixel's window. A
// thread's two quads keep their entries from slice to slice (a_row of t and t + 128 are one: a
// Tap found once) and step their output pixels (k0 + a_k) by WK.
struct PatchesTA {
  Windows win;
  int m;
  bool vec;
  int q;
  Tap tap;
  OutPixel px[2];
  __device__ PatchesTA(const Windows& wn, int rows, bool v, int row0) : win(wn), m(rows), vec(v) {
    q = row0 + a_row(threadIdx.x, false);
    tap = Tap::at(q, win.ch, win.kw);
  }
  __device__ bool along_k() const { return false; }
  __device__ void start(int k0) {
#pragma unroll
    for (int e = 0; e < 2; e++) px[e] = win.locate(k0 + a_k(threadIdx.x + WTHREADS * e, false));
  }
  __device__ void next() {
#pragma unroll
    for (int e = 0; e < 2; e++) px[e].advance(WK, win.oh, win.ow);
  }
  __device__ Quad fetch(int e, int row0, int k0, int k_end) const {
    int i = threadIdx.x + WTHREADS * e;
    int k = k0 + a_k(i, false);
    EMU_CHECK_POSITION(q == row0 + a_row(i, false) && (k >= k_end || px[e].is(win.locate(k))));
    if (k >= k_end) return zero_quad();
    return win.quad(win.image(px[e]), win.iy0(px[e]), win.ix0(px[e]), tap, q, m, vec);
  }
};

// B as a convolution's weights flipped, for its input gradient (rows: window entries (ky, kx,
// filter) of the output gradient's windows; columns: input channels): B[(t, f)][c] =
// w[(taps - 1 - t) ch + c][f], t = ky kw + kx, from the weights' layout (patch x filters: row
// (ky kw + kx) ch + c); both spatial axes reversed, which reverses t. Read along k: four filters
// of one tap and channel, consecutive in memory (vec: filters a multiple of 4, so the four share
// a tap, and the weights 16-byte aligned). A thread's quad keeps its k as (t, f), stepped.
template <int BN>
struct FlippedWeights {
  const float* w;
  int taps, ch, filters;
  bool vec;
  int t, f;
  __device__ bool along_k() const { return true; }
  __device__ void start(int k0) {
    int k = k0 + b_k<BN>(threadIdx.x, true);
    t = k / filters;
    f = k - t * filters;
  }
  __device__ void next() {
    f += WK;
    while (f >= filters) {
      f -= filters;
      t++;
    }
  }
  __device__ Quad fetch(int e, int col0, int k0, int k_end) const {
    int i = threadIdx.x + WTHREADS * e;
    int c = col0 + b_col<BN>(i, true), k = k0 + b_k<BN>(i, true);
    EMU_CHECK_POSITION(t * filters + f == k);
    if (c >= ch) return zero_quad();
    const float* at = w + ((long long) (taps - 1 - t) * ch + c) * filters + f;
    if (vec && k + 3 < k_end) return load_quad(at);
    Quad q;
    int tj = t, fj = f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
      q.v[j] = k + j < k_end ? w[((long long) (taps - 1 - tj) * ch + c) * filters + fj] : 0.f;
      if (++fj == filters) {
        fj = 0;
        tj++;
      }
    }
    return q;
  }
};

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define CONVSPARK_TF32 1
#include <mma.h>
#endif

#ifdef CONVSPARK_TF32
// A quad as the tensor cores take it in TF32 (cvt.rna.tf32.f32, a few integer instructions each
// on sm_90), rounded once as a thread stores it into the shared tiles: rounded in the fragments
// instead, each value was rounded by every warp that loads it, twice as many a slice.
__device__ __forceinline__ void round_tf32(Quad& q) {
#pragma unroll
  for (int j = 0; j < 4; j++) q.v[j] = nvcuda::wmma::__float_to_tf32(q.v[j]);
}
#endif

// C (m x n, ldc floats a row; split number `split`'s partial at c + split m ldc when split over k,
// as in sgemm: the grid's z, for the kernels that split)
// = A B with A and B as the loaders give them, + bias, ReLU (sgemm's epilogue, beta 0), in tiles
// of WM x BN (BN = WN, or 32 for products of 32 columns or fewer, which a 64-column tile would
// compute half empty): each thread sums 8 rows x BN / 8 columns. With TF32 the products are the
// tensor cores' (WMMA, m16n16k8, inputs rounded to TF32 as they are stored into the shared tiles,
// sums in float32): each warp computes a 64 x 32 quarter of a 128 x 64 tile (a 32 x 32 quarter
// of a 128 x 32 one) as fragments of 16 x 16, from the same shared tiles (their rows padded to 8
// floats, for WMMA's 32-byte aligned loads), and writes them through a 16 x 16 staging square per
// warp for the epilogue.
template <bool TF32, int BN, class LA, class LB>
__device__ __forceinline__ void wide_product(LA& la, LB& lb, int m, int n, int k, float* c, int ldc,
                                             int k_split, const float* bias, int relu, int split) {
  static_assert(BN == WN || BN == 32, "tiles are 64 or 32 columns wide");
  // Quads of a B slice (WK x BN): one for each of the first B_QUADS threads.
  constexpr int B_QUADS = WK * BN / 4;
  constexpr int LDA = TF32 ? WM + 8 : WM + WP;
  constexpr int LDB = TF32 ? BN + 8 : BN + WP;
  __shared__ __align__(128) float as[2][WK][LDA];
  __shared__ __align__(128) float bs[2][WK][LDB];
  int t = threadIdx.x;
  int row0 = blockIdx.x * WM;
  int col0 = blockIdx.y * BN;
  int k_begin = split * k_split;
  int k_end = min(k, k_begin + k_split);
  c += (long long) split * m * ldc;
  bool ak = la.along_k(), bk = lb.along_k();
  // A thread's share of the slice from k0: two quads of A and one of B, into registers; then
  // into shared buffer `buf`.
  Quad qa0, qa1, qb;
  auto fetch = [&](int k0) {
    qa0 = la.fetch(0, row0, k0, k_end);
    qa1 = la.fetch(1, row0, k0, k_end);
    if (B_QUADS == WTHREADS || t < B_QUADS) qb = lb.fetch(0, col0, k0, k_end);
    la.next();
    lb.next();
  };
  auto store = [&](int buf) {
#ifdef CONVSPARK_TF32
    if constexpr (TF32) {
      round_tf32(qa0);
      round_tf32(qa1);
      if (B_QUADS == WTHREADS || t < B_QUADS) round_tf32(qb);
    }
#endif
    stash<LDA>(a_row(t, ak), a_k(t, ak), ak, qa0, as[buf]);
    stash<LDA>(a_row(t + WTHREADS, ak), a_k(t + WTHREADS, ak), ak, qa1, as[buf]);
    if (B_QUADS == WTHREADS || t < B_QUADS) stash<LDB>(b_col<BN>(t, bk), b_k<BN>(t, bk), bk, qb, bs[buf]);
  };
  if (k_begin < k_end) {
    la.start(k_begin);
    lb.start(k_begin);
    fetch(k_begin);
    store(0);
  }
  __syncthreads();
#ifdef CONVSPARK_TF32
  if constexpr (TF32) {
    using namespace nvcuda;
    // Warps across the tile's columns (2, or 1), and each warp's rows in 16-row fragments (FM).
    constexpr int WARPS_N = BN / 32;
    constexpr int FM = WM / (WTHREADS / 32 / WARPS_N) / 16;
    int warp = t / 32, lane = t % 32;
    int wm = (warp / WARPS_N) * FM * 16, wn = (warp % WARPS_N) * 32;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[FM][2];
#pragma unroll
    for (int i = 0; i < FM; i++)
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.f);
    int cur = 0;
    for (int k0 = k_begin; k0 < k_end; k0 += WK) {
      bool next = k0 + WK < k_end;
      if (next) fetch(k0 + WK);
      // as[k][row] is A column-major (ld LDA), bs[k][col] is B row-major (ld LDB).
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fa[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb[2];
      // The tiles hold TF32 values already (round_tf32): loaded as they are.
#pragma unroll
      for (int i = 0; i < FM; i++) wmma::load_matrix_sync(fa[i], &as[cur][0][wm + 16 * i], LDA);
#pragma unroll
      for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &bs[cur][0][wn + 16 * j], LDB);
#pragma unroll
      for (int i = 0; i < FM; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
      if (next) store(cur ^ 1);
      __syncthreads();
      cur ^= 1;
    }
    __shared__ __align__(128) float stage[WTHREADS / 32][16 * 16];
#pragma unroll
    for (int i = 0; i < FM; i++) {
#pragma unroll
      for (int j = 0; j < 2; j++) {
        wmma::store_matrix_sync(stage[warp], acc[i][j], 16, wmma::mem_row_major);
        __syncthreads();
        // Each lane: 8 entries of the square, half a row.
        int r = lane / 2, c0 = (lane % 2) * 8;
        int row = row0 + wm + 16 * i + r;
#pragma unroll
        for (int e = 0; e < 8; e++) {
          int col = col0 + wn + 16 * j + c0 + e;
          if (row < m && col < n) {
            long long o = (long long) row * ldc + col;
            c[o] = epilogue(stage[warp][r * 16 + c0 + e], bias, col, 0.f, c, o, relu);
          }
        }
        __syncthreads();
      }
    }
    return;
  }
#endif
  // Thread (tx, ty): rows 4 ty to 4 ty + 3 and 64 + 4 ty to 64 + 4 ty + 3; columns 4 tx to
  // 4 tx + 3, and with 64-column tiles 32 + 4 tx to 32 + 4 tx + 3.
  constexpr int TJ = BN / 8;
  int tx = t % 8;
  int ty = t / 8;
  float acc[8][TJ];
#pragma unroll
  for (int i = 0; i < 8; i++)
#pragma unroll
    for (int j = 0; j < TJ; j++) acc[i][j] = 0.f;
  int cur = 0;
  for (int k0 = k_begin; k0 < k_end; k0 += WK) {
    // The same for every thread of the block, so each reaches the same barriers.
    bool next = k0 + WK < k_end;
    if (next) fetch(k0 + WK);
#pragma unroll
    for (int q = 0; q < WK; q++) {
      float4 a0 = *reinterpret_cast<const float4*>(&as[cur][q][4 * ty]);
      float4 a1 = *reinterpret_cast<const float4*>(&as[cur][q][WM / 2 + 4 * ty]);
      float4 b0 = *reinterpret_cast<const float4*>(&bs[cur][q][4 * tx]);
      float4 b1 = TJ == 8 ? *reinterpret_cast<const float4*>(&bs[cur][q][BN / 2 + 4 * tx]) : b0;
      float ar[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      float br[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; i++)
#pragma unroll
        for (int j = 0; j < TJ; j++) acc[i][j] = fmaf(ar[i], br[j], acc[i][j]);
    }
    // The other buffer was last read before the previous barrier: free to overwrite.
    if (next) store(cur ^ 1);
    __syncthreads();
    cur ^= 1;
  }
#pragma unroll
  for (int i = 0; i < 8; i++) {
    int row = row0 + (i < 4 ? 4 * ty + i : WM / 2 + 4 * ty + i - 4);
    if (row >= m) continue;
#pragma unroll
    for (int j = 0; j < TJ; j++) {
      int col = col0 + (j < 4 ? 4 * tx + j : BN / 2 + 4 * tx + j - 4);
      if (col >= n) continue;
      long long o = (long long) row * ldc + col;
      c[o] = epilogue(acc[i][j], bias, col, 0.f, c, o, relu);
    }
  }
}

// Registers: each kernel's __launch_bounds__ gives its blocks of 128 threads, and for the TF32
// forms (and conv_weight_grad) 4 blocks a multiprocessor, so at most 128 registers a thread, which
// they fit without spilling (tensor-native/sass-mix.py); left free, ptxas gave sgemm_wide_tf32
// 168 and 3 blocks. The float32 forms have no such bound (0): ptxas gives them 80 to 141.

// sgemm (beta 0) in wide tiles: vec_a and vec_b say where 16-byte loads may be used. Grid:
// (m / 128, n / BN, splits) rounded up, 128 threads a block: the tiles of rows along x, which
// holds 2^31 - 1 of them where y holds 65,535 (a step of 10,700 images or more had conv1's
// forward pass past y's limit).
#define SGEMM_WIDE(NAME, TF32, BN)                                                                               \
  extern "C" __global__ void __launch_bounds__(WTHREADS, TF32 ? 4 : 0)                                        \
      NAME(int trans_a, int trans_b, int m, int n, int k, const float* a, int lda, int vec_a, const float* b,   \
           int ldb, int vec_b, float* c, int ldc, int k_split, const float* bias, int relu) {                   \
    MatrixA la = {a, trans_a, lda, m, vec_a != 0};                                                            \
    MatrixB<BN> lb = {b, trans_b, ldb, n, vec_b != 0};                                                        \
    wide_product<TF32, BN>(la, lb, m, n, k, c, ldc, k_split, bias, relu, blockIdx.z);                         \
  }

// The one argument list of the convolution kernels (CudaBackend passes each the same layout): the
// input IN of n images (h x w x ch), the geometry, where 16-byte loads of IN may be used, B with
// its filters, where 16-byte loads of B may be used, then C (OUT, ldc), the share of k a block
// sums, bias and relu as every wide kernel's.
#define CONV_ARGS(IN, VEC_IN, B, VEC_B, OUT)                                                                     \
  const float *IN, int n, int h, int w, int ch, int kh, int kw, int stride, int pad_top, int pad_left, int oh,  \
      int ow, int VEC_IN, const float *B, int filters, int VEC_B, float *OUT, int ldc, int k_split,             \
      const float *bias, int relu

// A convolution's forward pass without im2col: y (n * oh * ow rows x filters, ldc floats a row)
// = the windows of x times the weights (patch x filters, the layers' layout) + bias, ReLU when
// relu; split over k as sgemm_wide. vec_x: ch a multiple of 4 and x 16-byte aligned; vec_w:
// filters a multiple of 4 and the weights so aligned. Grid as sgemm_wide's.
#define CONV_FORWARD(NAME, TF32, BN)                                                                             \
  extern "C" __global__ void __launch_bounds__(WTHREADS, TF32 ? 4 : 0)                                        \
      NAME(CONV_ARGS(x, vec_x, weights, vec_w, y)) {                                                          \
    Windows win = {x, h, w, ch, kw, stride, pad_top, pad_left, oh, ow};                                       \
    int rows = n * oh * ow;                                                                                   \
    PatchesA la(win, rows, vec_x != 0, blockIdx.x * WM);                                                      \
    MatrixB<BN> lb = {weights, 0, filters, filters, vec_w != 0};                                              \
    wide_product<TF32, BN>(la, lb, rows, filters, kh * kw * ch, y, ldc, k_split, bias, relu, blockIdx.z);     \
  }

// A convolution's weight gradient without im2col: dw (patch x filters, ldc floats a row) = the
// windows of x, transposed, times dy (n * oh * ow rows x filters), summed over the rows, split
// over them as sgemm_wide (then bias 0 and relu 0). vec_x as conv_forward's; vec_dy: filters a
// multiple of 4 and dy 16-byte aligned.
// 4 blocks a multiprocessor in float32 too: its loader's kept pixels took it to 129 registers and
// 3 blocks (it had 125 and 4 before).
#define CONV_WEIGHT_GRAD(NAME, TF32, BN)                                                                         \
  extern "C" __global__ void __launch_bounds__(WTHREADS, 4)                                                   \
      NAME(CONV_ARGS(x, vec_x, dy, vec_dy, dw)) {                                                             \
    Windows win = {x, h, w, ch, kw, stride, pad_top, pad_left, oh, ow};                                       \
    int patch = kh * kw * ch;                                                                                 \
    PatchesTA la(win, patch, vec_x != 0, blockIdx.x * WM);                                                    \
    MatrixB<BN> lb = {dy, 0, filters, filters, vec_dy != 0};                                                  \
    wide_product<TF32, BN>(la, lb, patch, filters, n * oh * ow, dw, ldc, k_split, bias, relu, blockIdx.z);    \
  }

// A stride-1 convolution's input gradient without col2im: dx (n * h * w rows x ch, ldc floats a
// row) = the windows of dy (kh x kw, padded by kh - 1 - pad_top above and kw - 1 - pad_left on the
// left, one for each input pixel) times the weights flipped (FlippedWeights): the correlation
// of dy with the flipped kernel, which is the transposed convolution at stride 1. Split over k as
// sgemm_wide (then bias 0 and relu 0). The arguments are conv_forward's with dy in x's place;
// stride must be 1 (the host checks). vec_dy: filters a multiple of 4 and dy 16-byte aligned;
// vec_w: filters a multiple of 4 and the weights so aligned.
#define CONV_INPUT_GRAD(NAME, TF32, BN)                                                                          \
  extern "C" __global__ void __launch_bounds__(WTHREADS, TF32 ? 4 : 0)                                        \
      NAME(CONV_ARGS(dy, vec_dy, weights, vec_w, dx)) {                                                       \
    Windows win = {dy, oh, ow, filters, kw, 1, kh - 1 - pad_top, kw - 1 - pad_left, h, w};                    \
    int rows = n * h * w;                                                                                     \
    PatchesA la(win, rows, vec_dy != 0, blockIdx.x * WM);                                                     \
    FlippedWeights<BN> lb = {weights, kh * kw, ch, filters, vec_w != 0};                                      \
    wide_product<TF32, BN>(la, lb, rows, ch, kh * kw * filters, dx, ldc, k_split, bias, relu, blockIdx.z);    \
  }

// The float32 kernels in 128 x 64 tiles, and (named ..._n32) in 128 x 32 tiles for products of 32
// columns or fewer; where the architecture has tensor cores for TF32 (8.0 and newer: the PTX
// built for compute_80), the same with TF32 products.
SGEMM_WIDE(sgemm_wide, false, WN)
CONV_FORWARD(conv_forward, false, WN)
CONV_WEIGHT_GRAD(conv_weight_grad, false, WN)
CONV_INPUT_GRAD(conv_input_grad, false, WN)
SGEMM_WIDE(sgemm_wide_n32, false, 32)
CONV_FORWARD(conv_forward_n32, false, 32)
CONV_WEIGHT_GRAD(conv_weight_grad_n32, false, 32)
CONV_INPUT_GRAD(conv_input_grad_n32, false, 32)
#ifdef CONVSPARK_TF32
SGEMM_WIDE(sgemm_wide_tf32, true, WN)
CONV_FORWARD(conv_forward_tf32, true, WN)
CONV_WEIGHT_GRAD(conv_weight_grad_tf32, true, WN)
CONV_INPUT_GRAD(conv_input_grad_tf32, true, WN)
SGEMM_WIDE(sgemm_wide_n32_tf32, true, 32)
CONV_FORWARD(conv_forward_n32_tf32, true, 32)
CONV_WEIGHT_GRAD(conv_weight_grad_n32_tf32, true, 32)
CONV_INPUT_GRAD(conv_input_grad_n32_tf32, true, 32)
#endif

// ---- Winograd's minimal filtering F(2 x 2, 5 x 5): stride-1 5 x 5 convolutions in 36 products ----
//
// Each 2 x 2 block of output pixels (a tile) comes from the 6 x 6 input window under it through
// Y = A^T [(G g G^T) . (B^T d B)] A ('.' element by element), with the CPU's transforms
// (WinogradConv.java: the points 0, 1, -1, 2, -2 and infinity). Summed over the input channels,
// the 36 element-wise products of a tile are 36 independent products, (tiles x channels) times
// (channels x filters): 36 multiply-adds per tile, channel and filter where the direct convolution
// takes 100 (2.78 times fewer). Four kernels: winograd_input (V = B^T d B, each point's matrix of
// tiles x channels after the one before, V[p][tile][c]), winograd_weights (U[p][c][f] = G g G^T),
// winograd_product (M[p] = V[p] U[p] in the wide tiles, one point a grid's z) and winograd_output
// (A^T M A + bias, ReLU, into the output). A stride-1 convolution's input gradient is the same
// with dy as the input, padded by 4 - pad, and the weights flipped in both kernel axes with the
// channels and filters swapped (`flipped`).

// B^T x (six values): the input transform along one axis.
__device__ __forceinline__ void winograd_bt(const float* x, float* r) {
  r[0] = x[4] * 0.25f + x[0] - x[2] * 1.25f;
  r[1] = (x[1] + x[2]) * (2.f / 3) - (x[3] + x[4]) * (1.f / 6);
  r[2] = (x[2] - x[1]) * (2.f / 3) + (x[3] - x[4]) * (1.f / 6);
  float d31 = (x[3] - x[1]) * (1.f / 12);
  float d42 = (x[4] - x[2]) * (1.f / 24);
  r[3] = d31 + d42;
  r[4] = d42 - d31;
  r[5] = x[1] * 4.f - x[3] * 5.f + x[5];
}

// G g (five values): the weights' transform along one axis.
__device__ __forceinline__ void winograd_g(const float* g, float* r) {
  float even = g[0] + g[2] + g[4], odd = g[1] + g[3];
  float even2 = g[0] + g[2] * 4.f + g[4] * 16.f, odd2 = g[1] * 2.f + g[3] * 8.f;
  r[0] = g[0];
  r[1] = even + odd;
  r[2] = even - odd;
  r[3] = even2 + odd2;
  r[4] = even2 - odd2;
  r[5] = g[4];
}

// A^T m (six values): the output transform along one axis.
__device__ __forceinline__ void winograd_at(const float* m, float* r) {
  r[0] = m[0] + m[1] + m[2] + m[3] + m[4];
  r[1] = m[1] - m[2] + (m[3] - m[4]) * 2.f + m[5];
}

// A tile's place: tile t of n images of tiles_h x tiles_w tiles, as (image, tile row, tile column).
__device__ __forceinline__ void winograd_tile(long long t, int tiles_h, int tiles_w, int& s, int& ty, int& tx) {
  tx = (int) (t % tiles_w);
  long long r = t / tiles_w;
  ty = (int) (r % tiles_h);
  s = (int) (r / tiles_h);
}

// The separable transform T d T^T of an N x N square d (d[row][column]) into r (M x M), T (M of N)
// being `t`: down each column, then along each row of the result.
template <int N, int M, class T>
__device__ __forceinline__ void winograd_square(const float (&d)[N][N], float (&r)[M][M], T t) {
  float e[M][N];
#pragma unroll
  for (int b = 0; b < N; b++) {
    float col[N], o[M];
#pragma unroll
    for (int a = 0; a < N; a++) col[a] = d[a][b];
    t(col, o);
#pragma unroll
    for (int a = 0; a < M; a++) e[a][b] = o[a];
  }
#pragma unroll
  for (int a = 0; a < M; a++) t(e[a], r[a]);
}

// v[p][t][c] (each point's tiles x ch matrix after the one before) = B^T d B of tile t's 6 x 6
// window of x (n images h x w x ch; the window of the tile at (ty, tx) from row 2 ty - pad_top and
// column 2 tx - pad_left, zeros outside), one thread a tile and channel.
extern "C" __global__ void winograd_input(const float* x, int n, int h, int w, int ch, int pad_top, int pad_left,
                                          int tiles_h, int tiles_w, float* v) {
  long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  long long tiles = (long long) n * tiles_h * tiles_w;
  if (i >= tiles * ch) return;
  int c = (int) (i % ch);
  long long t = i / ch;
  int s, ty, tx;
  winograd_tile(t, tiles_h, tiles_w, s, ty, tx);
  int y0 = 2 * ty - pad_top, x0 = 2 * tx - pad_left;
  float d[6][6], r[6][6];
#pragma unroll
  for (int a = 0; a < 6; a++)
#pragma unroll
    for (int b = 0; b < 6; b++) {
      int yy = y0 + a, xx = x0 + b;
      d[a][b] = yy >= 0 && yy < h && xx >= 0 && xx < w ? x[(((long long) s * h + yy) * w + xx) * ch + c] : 0.f;
    }
  winograd_square<6, 6>(d, r, winograd_bt);
#pragma unroll
  for (int a = 0; a < 6; a++)
#pragma unroll
    for (int b = 0; b < 6; b++) v[((long long) (a * 6 + b) * tiles + t) * ch + c] = r[a][b];
}

// u[p][c][f] = G g G^T of the 5 x 5 kernel from input channel c to filter f, one thread each: the
// layer's weights ((kh kw + kx) ch + c) x filters as they are, or, flipped (a stride-1 input
// gradient's: this plan's ch and filters are the layer's filters and channels),
// w'[ky][kx][c][f] = w[4 - ky][4 - kx][f][c].
extern "C" __global__ void winograd_weights(const float* wt, int ch, int filters, int flipped, float* u) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= ch * filters) return;
  int f = i % filters, c = i / filters;
  float g[5][5], r[6][6];
#pragma unroll
  for (int ky = 0; ky < 5; ky++)
#pragma unroll
    for (int kx = 0; kx < 5; kx++) {
      int tap = ky * 5 + kx;
      g[ky][kx] = flipped ? wt[((long long) (24 - tap) * filters + f) * ch + c]
                          : wt[((long long) tap * ch + c) * filters + f];
    }
  winograd_square<5, 6>(g, r, winograd_g);
#pragma unroll
  for (int a = 0; a < 6; a++)
#pragma unroll
    for (int b = 0; b < 6; b++) u[((long long) (a * 6 + b) * ch + c) * filters + f] = r[a][b];
}

// m[p] (tiles x filters, ldc floats a row) = v[p] (tiles x ch) u[p] (ch x filters) for the point p
// of the grid's z, in the wide tiles (unsplit: k_split is ch; then bias 0 and relu 0, the output
// transform's). vec_v: ch a multiple of 4 and v 16-byte aligned; vec_u: filters so and u so.
#define WINOGRAD_PRODUCT(NAME, TF32, BN)                                                                         \
  extern "C" __global__ void __launch_bounds__(WTHREADS, TF32 ? 4 : 0)                                        \
      NAME(int tiles, int ch, int filters, const float* v, int vec_v, const float* u, int vec_u, float* m,      \
           int ldc, int k_split, const float* bias, int relu) {                                                 \
    long long p = blockIdx.z;                                                                                 \
    MatrixA la = {v + p * tiles * ch, 0, ch, tiles, vec_v != 0};                                              \
    MatrixB<BN> lb = {u + p * ch * filters, 0, filters, filters, vec_u != 0};                                 \
    wide_product<TF32, BN>(la, lb, tiles, filters, ch, m + p * tiles * ldc, ldc, k_split, bias, relu, 0);     \
  }

WINOGRAD_PRODUCT(winograd_product, false, WN)
WINOGRAD_PRODUCT(winograd_product_n32, false, 32)

// y (n images oh x ow x filters) = A^T m A of each tile's 36 products (m[p][t][f]), + bias[f],
// ReLU when relu (sgemm's epilogue), one thread a tile and filter; a tile's pixels past the
// output's last row or column (odd oh or ow) are not written.
extern "C" __global__ void winograd_output(const float* m, int n, int tiles_h, int tiles_w, int filters, int oh,
                                           int ow, const float* bias, int relu, float* y) {
  long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  long long tiles = (long long) n * tiles_h * tiles_w;
  if (i >= tiles * filters) return;
  int f = (int) (i % filters);
  long long t = i / filters;
  int s, ty, tx;
  winograd_tile(t, tiles_h, tiles_w, s, ty, tx);
  float d[6][6], r[2][2];
#pragma unroll
  for (int a = 0; a < 6; a++)
#pragma unroll
    for (int b = 0; b < 6; b++) d[a][b] = m[((long long) (a * 6 + b) * tiles + t) * filters + f];
  winograd_square<6, 2>(d, r, winograd_at);
#pragma unroll
  for (int a = 0; a < 2; a++) {
    int oy = 2 * ty + a;
#pragma unroll
    for (int b = 0; b < 2; b++) {
      int ox = 2 * tx + b;
      if (oy < oh && ox < ow) {
        long long o = (((long long) s * oh + oy) * ow + ox) * filters + f;
        y[o] = epilogue(r[a][b], bias, f, 0.f, y, o, relu);
      }
    }
  }
}

// Column sums of dy (rows x cols), a bias's gradient. Block (bx, by) sums columns bx * 32 to
// bx * 32 + 31 over rows by * chunk to by * chunk + chunk - 1, eight rows at a time, a warp reading
// 32 consecutive columns of a row, into part[by][col] (with one chunk, part is the result; with
// more, sum_splits adds the chunks up in order).
extern "C" __global__ void column_sums(const float* dy, int rows, int cols, int chunk, float* part) {
  __shared__ float sums[8][33];
  int tx = threadIdx.x % 32;
  int ty = threadIdx.x / 32;
  int col = blockIdx.x * 32 + tx;
  int end = min(rows, (blockIdx.y + 1) * chunk);
  float s = 0.f;
  if (col < cols) {
    for (int r = blockIdx.y * chunk + ty; r < end; r += 8) s += dy[(long long) r * cols + col];
  }
  sums[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && col < cols) {
    float t = 0.f;
    for (int i = 0; i < 8; i++) t += sums[i][tx];
    part[(long long) blockIdx.y * cols + col] = t;
  }
}

// Element i of images of h x w x ch (NHWC): sample, row, column, channel.
struct Pixel {
  int s, y, x, c;
};

__device__ __forceinline__ Pixel pixel(long long i, int h, int w, int ch) {
  Pixel p;
  if (i <= 0xffffffffLL) {
    // 32-bit division where the index allows (it always does below 4 G elements): a 64-bit one
    // is a long subroutine, and these kernels are bound by their index arithmetic, not memory.
    unsigned u = (unsigned) i;
    unsigned t = u / ch;
    p.c = (int) (u - t * ch);
    unsigned r = t / w;
    p.x = (int) (t - r * w);
    p.s = (int) (r / h);
    p.y = (int) (r - p.s * h);
    return p;
  }
  p.c = (int) (i % ch);
  p.x = (int) ((i / ch) % w);
  p.y = (int) ((i / ((long long) ch * w)) % h);
  p.s = (int) (i / ((long long) ch * w * h));
  return p;
}

// Entry q (ky, kx, channel) of patch row `row`, whose sample and output position are s, oy, ox.
__device__ __forceinline__ void im2col_entry(const float* x, float* col, unsigned row, int s, int oy, int ox,
                                             unsigned q, unsigned patch, int h, int w, int ch, int kw, int stride,
                                             int pad_top, int pad_left) {
  unsigned t = q / ch;
  int c = (int) (q - t * ch);
  int ky = (int) (t / kw);
  int kx = (int) t - ky * kw;
  int iy = oy * stride - pad_top + ky;
  int ix = ox * stride - pad_left + kx;
  col[(long long) row * patch + q] =
      iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(((long long) s * h + iy) * w + ix) * ch + c] : 0.f;
}

// Patches of n images (h x w x ch, NHWC) as rows (sample, out y, out x), columns (ky, kx, channel).
// Block b fills rows b * rows_per_block onwards; the host gives rows_per_block = 256 / patch, or 1
// where a patch has 256 entries or more, and then the block's threads walk the one row's entries
// 256 apart, its sample and position worked out once. A warp writes consecutive floats and reads
// consecutive channels. 32-bit index arithmetic: rows < 2^31 (the host's row counts are ints).
extern "C" __global__ void im2col(const float* x, float* col, int n, int h, int w, int ch, int kh, int kw, int stride,
                                  int pad_top, int pad_left, int oh, int ow, int rows_per_block) {
  unsigned patch = (unsigned) (kh * kw * ch);
  unsigned rows = (unsigned) n * oh * ow;
  unsigned pixels = (unsigned) (oh * ow);
  unsigned row = blockIdx.x * (unsigned) rows_per_block;
  if (rows_per_block == 1) {
    if (row >= rows) return;
    int s = (int) (row / pixels);
    int p = (int) (row - s * pixels);
    int oy = p / ow;
    int ox = p - oy * ow;
    for (unsigned q = threadIdx.x; q < patch; q += blockDim.x) {
      im2col_entry(x, col, row, s, oy, ox, q, patch, h, w, ch, kw, stride, pad_top, pad_left);
    }
    return;
  }
  unsigned r = threadIdx.x / patch;
  row += r;
  if (r >= (unsigned) rows_per_block || row >= rows) return;
  int s = (int) (row / pixels);
  int p = (int) (row - s * pixels);
  int oy = p / ow;
  im2col_entry(x, col, row, s, oy, p - oy * ow, threadIdx.x - r * patch, patch, h, w, ch, kw, stride, pad_top,
               pad_left);
}

// The transpose of im2col: each input element gathers the patch entries that read it, the output
// positions whose windows hold it worked out as ranges (ky ascending, then kx, as a loop over the
// window that skips the positions outside would add them).
extern "C" __global__ void col2im(const float* col, float* dx, int n, int h, int w, int ch, int kh, int kw, int stride,
                                  int pad_top, int pad_left, int oh, int ow) {
  long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long) n * h * w * ch) return;
  Pixel p = pixel(i, h, w, ch);
  int s = p.s, c = p.c;
  // Output position oy reads row iy at ky = ty - oy * stride, for 0 <= ky < kh and 0 <= oy < oh.
  int ty = p.y + pad_top;
  int tx = p.x + pad_left;
  int oy_last = min(oh - 1, ty / stride);
  int oy_first = ty < kh ? 0 : (ty - kh + stride) / stride;
  int ox_last = min(ow - 1, tx / stride);
  int ox_first = tx < kw ? 0 : (tx - kw + stride) / stride;
  long long patch = (long long) kh * kw * ch;
  float sum = 0.f;
  for (int oy = oy_last; oy >= oy_first; oy--) {
    int ky = ty - oy * stride;
    for (int ox = ox_last; ox >= ox_first; ox--) {
      long long row = ((long long) s * oh + oy) * ow + ox;
      sum += col[row * patch + ((long long) ky * kw + (tx - ox * stride)) * ch + c];
    }
  }
  dx[i] = sum;
}

// Max over each window (padding ignored), remembering where the max came from (first on ties).
extern "C" __global__ void max_pool(const float* x, float* y, int* argmax, int n, int h, int w, int ch, int kh, int kw,
                                    int stride, int pad_top, int pad_left, int oh, int ow) {
  long long o = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= (long long) n * oh * ow * ch) return;
  Pixel p = pixel(o, oh, ow, ch);
  int s = p.s, oy = p.y, ox = p.x, c = p.c;
  float best = 0.f;
  int where = -1;
  for (int ky = 0; ky < kh; ky++) {
    int iy = oy * stride - pad_top + ky;
    if (iy < 0 || iy >= h) continue;
    for (int kx = 0; kx < kw; kx++) {
      int ix = ox * stride - pad_left + kx;
      if (ix < 0 || ix >= w) continue;
      int xi = ((s * h + iy) * w + ix) * ch + c;
      if (where < 0 || x[xi] > best) {
        best = x[xi];
        where = xi;
      }
    }
  }
  y[o] = best;
  argmax[o] = where;
}

// Max pooling's backward pass where windows do not overlap (stride >= window): each input element
// gets the dy of the one window it is in if its max came from there, else 0; with positive_only,
// only where x > 0 (the backward pass of a ReLU before the pool, whose output x is).
extern "C" __global__ void max_pool_backward_gather(const float* dy, const int* argmax, const float* x, float* dx,
                                                    int n, int h, int w, int ch, int kh, int kw, int stride,
                                                    int pad_top, int pad_left, int oh, int ow, int positive_only) {
  long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long) n * h * w * ch) return;
  Pixel p = pixel(i, h, w, ch);
  int s = p.s, iy = p.y, ix = p.x, c = p.c;
  int oy = (iy + pad_top) / stride;
  int ox = (ix + pad_left) / stride;
  float g = 0.f;
  if (oy < oh && ox < ow && iy + pad_top - oy * stride < kh && ix + pad_left - ox * stride < kw) {
    long long o = (((long long) s * oh + oy) * ow + ox) * ch + c;
    if (argmax[o] == i && (!positive_only || x[i] > 0.f)) g = dy[o];
  }
  dx[i] = g;
}

// dx (zeroed by the host) gets each dy at the position its max came from (any windows).
extern "C" __global__ void max_pool_backward(const float* dy, const int* argmax, float* dx, int size) {
  int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o < size) atomicAdd(&dx[argmax[o]], dy[o]);
}

extern "C" __global__ void relu(const float* x, float* y, int len) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < len) y[i] = fmaxf(x[i], 0.f);
}

extern "C" __global__ void relu_backward(const float* y, const float* dy, float* dx, int len) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < len) dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

// Dropout's forward pass with the CPU's masks (Dropout.fillMask): value i of sample s is value
// first[s] * size + i % size of the global batch, kept (mask = scale, else 0) when the top 24 bits
// of SplitMix64's finaliser of mixed_seed + (value + 1) * 0x9E3779B97F4A7C15 are below `below`.
// Integer arithmetic only, so the masks are the CPU's bit for bit; y = x * mask. The step's seed
// is read from device memory (uploaded with the batch), so that a CUDA graph of the step, whose
// arguments are fixed when it is captured, draws each step's own masks.
extern "C" __global__ void dropout(const float* x, float* y, float* mask, int n, int size, const long long* first,
                                   const unsigned long long* mixed_seed, unsigned long long below, float scale) {
  long long i = (long long) blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (long long) n * size) return;
  unsigned long long value = (unsigned long long) first[i / size] * size + i % size;
  unsigned long long z = *mixed_seed + (value + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  float m = (z >> 40) < below ? scale : 0.f;
  mask[i] = m;
  y[i] = x[i] * m;
}

// y = x * mask elementwise (dropout's backward pass, with the mask its forward pass kept).
extern "C" __global__ void multiply(const float* x, const float* mask, float* y, int len) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < len) y[i] = x[i] * mask[i];
}

// Softmax cross-entropy of each sample from its logits, computed as the CPU does (max
// subtracted, sums in double): loss[s], correct[s] (argmax == label, first max on ties) and
// dlogits = scale[s] * (softmax - onehot), each sample's scale (the step's times the sample's weight)
// read from device memory (as dropout's seed); loss[s] is not weighted.
extern "C" __global__ void softmax_xent(const float* logits, const int* labels, int n, int classes,
                                        const float* scales, float* dlogits, double* loss, int* correct) {
  int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= n) return;
  float scale = scales[s];
  const float* l = logits + (long long) s * classes;
  int y = labels[s];
  float mx = l[0];
  int best = 0;
  for (int c = 1; c < classes; c++) {
    if (l[c] > mx) {
      mx = l[c];
      best = c;
    }
  }
  double sum = 0;
  for (int c = 0; c < classes; c++) sum += exp((double) (l[c] - mx));
  loss[s] = log(sum) + mx - l[y];
  correct[s] = best == y ? 1 : 0;
  double inv = 1 / sum;
  for (int c = 0; c < classes; c++) {
    dlogits[(long long) s * classes + c] = (float) (scale * (exp((double) (l[c] - mx)) * inv - (c == y ? 1 : 0)));
  }
}

// Adam in TensorFlow's form; step_size = lr * sqrt(1 - beta2^t) / (1 - beta1^t), computed on the host.
__device__ __forceinline__ void adam_entry(float& p, float g, float& m, float& v, float step_size, float beta1,
                                           float beta2, float eps) {
  m = beta1 * m + (1 - beta1) * g;
  v = beta2 * v + (1 - beta2) * (g * g);
  p -= step_size * m / (sqrtf(v) + eps);
}

// Thread i updates entries 4 i to 4 i + 3, with 16-byte loads and stores where the four arrays
// allow them (cuMemAlloc's start 256-byte aligned): the update reads 4 and writes 3 floats per
// parameter, memory-bound.
extern "C" __global__ void adam(float* p, const float* g, float* m, float* v, int len, float step_size, float beta1,
                                float beta2, float eps) {
  int i = 4 * (blockIdx.x * blockDim.x + threadIdx.x);
  bool aligned = ((reinterpret_cast<unsigned long long>(p) | reinterpret_cast<unsigned long long>(g) |
                   reinterpret_cast<unsigned long long>(m) | reinterpret_cast<unsigned long long>(v)) & 15) == 0;
  if (aligned && i + 4 <= len) {
    float4 pi = *reinterpret_cast<float4*>(p + i);
    float4 gi = *reinterpret_cast<const float4*>(g + i);
    float4 mi = *reinterpret_cast<float4*>(m + i);
    float4 vi = *reinterpret_cast<float4*>(v + i);
    adam_entry(pi.x, gi.x, mi.x, vi.x, step_size, beta1, beta2, eps);
    adam_entry(pi.y, gi.y, mi.y, vi.y, step_size, beta1, beta2, eps);
    adam_entry(pi.z, gi.z, mi.z, vi.z, step_size, beta1, beta2, eps);
    adam_entry(pi.w, gi.w, mi.w, vi.w, step_size, beta1, beta2, eps);
    *reinterpret_cast<float4*>(p + i) = pi;
    *reinterpret_cast<float4*>(m + i) = mi;
    *reinterpret_cast<float4*>(v + i) = vi;
    return;
  }
  for (int e = i; e < min(i + 4, len); e++) adam_entry(p[e], g[e], m[e], v[e], step_size, beta1, beta2, eps);
}

// x *= factor (a sum of gradients into their mean).
extern "C" __global__ void scale(float* x, int len, float factor) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < len) x[i] *= factor;
}

extern "C" __global__ void sgd(float* p, const float* g, int len, float lr) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < len) p[i] -= lr * g[i];
}
