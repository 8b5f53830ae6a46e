package dev.convspark.tensor.kernels;

import static dev.convspark.tensor.kernels.FastKernels.MR;
import static dev.convspark.tensor.kernels.FastKernels.NR;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A stride-1 convolution with a 5 x 5 kernel by Winograd's minimal filtering F(2 x 2, 5 x 5): each
 * 2 x 2 block of output pixels (a tile) comes from the 6 x 6 input window under it through
 * {@code Y = A^T [(G g G^T) . (B^T d B)] A}, where {@code .} multiplies element by element. Summed
 * over the channels, the 36 element-wise products of a tile are 36 independent multiplies
 * ({@code tiles x channels} by {@code channels x filters}), which take 36 multiply-adds per tile,
 * channel and filter where the direct convolution takes 100: 2.78 times fewer. The transforms,
 * linear in the input, the weights and the output, cost a few per cent of that.
 *
 * <p>The transforms come from the interpolation points {@code 0, 1, -1, 2, -2} and infinity (a
 * Toom-Cook construction: {@code A^T} and {@code G} are Vandermonde matrices of the points,
 * {@code B^T} the inverse Vandermonde transposed). In float32 one tile's results differ from the
 * direct sum by at most a few parts in a million of its largest value (measured over random tiles);
 * the parity tests hold each route to its sums.
 *
 * <p>The same transforms give the training step's other two products:
 *
 * <ul>
 *   <li>input gradient: a correlation of the output gradient, padded by {@code 4 - pad}, with the
 *       weights flipped in both kernel axes and transposed (a full convolution), so the forward
 *       plan run over other sizes ({@link #inputGradient});
 *   <li>weight gradient: F(5 x 5, 2 x 2), the 5 x 5 kernel as the output and each 2 x 2 tile of the
 *       output gradient as the filter over the same 6 x 6 input windows (the same {@code B^T}).
 *       In the transformed domain the sum over all tiles of all samples is, for each of the 36
 *       points, one multiply {@code dy'^T x'} whose depth is the tiles; the 5 x 5 result is
 *       transformed back once a step.
 * </ul>
 *
 * <p>Layouts (all per thread and per sample, floats): the padded input image, channel-last with
 * {@code depth} channels (the input's, rounded up to whole vectors, zero past the last); the
 * transformed input {@code V[tile][point][depth]}; the transformed weights as the multiply's
 * register-tile panels, panel {@code q} of {@code NR} output channels at
 * {@code [q][point][depth][NR]}, so that every point's slice is the depth range
 * {@code [point * depth, point * depth + depth)} of one long operand; the products
 * {@code M[tile][point][width]} ({@code width}: the output channels rounded up to whole panels).
 */
final class WinogradConv {

  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
  private static final int L = S.length();
  // The transforms' coefficients as vectors: constants to the JIT, of the exact vector class.
  private static final FloatVector QUARTER = FloatVector.broadcast(S, 0.25f);
  private static final FloatVector FIVE_QUARTERS = FloatVector.broadcast(S, 1.25f);
  private static final FloatVector TWO_THIRDS = FloatVector.broadcast(S, 2f / 3);
  private static final FloatVector SIXTH = FloatVector.broadcast(S, 1f / 6);
  private static final FloatVector TWELFTH = FloatVector.broadcast(S, 1f / 12);
  private static final FloatVector TWENTY_FOURTH = FloatVector.broadcast(S, 1f / 24);
  private static final FloatVector FOUR = FloatVector.broadcast(S, 4f);
  private static final FloatVector FIVE = FloatVector.broadcast(S, 5f);
  private static final FloatVector TWO = FloatVector.broadcast(S, 2f);
  private static final FloatVector SIXTEEN = FloatVector.broadcast(S, 16f);
  private static final FloatVector EIGHT = FloatVector.broadcast(S, 8f);

  /** Side of the transformed tile: 2 output pixels + 5 kernel taps - 1. */
  static final int N = 6;
  /** Points of the transformed tile. */
  static final int POINTS = N * N;
  /** Side of the kernel this route takes. */
  static final int K = 5;
  /**
   * Fewest input channels this route takes: the products' depth. Below it (a first layer's one
   * channel) the transforms' share grows and the implicit or shifted-image routes stay.
   */
  static final int MIN_CHANNELS = 8;

  /** Off with {@code -Dconvspark.conv.winograd=false}: the implicit route, for comparisons. */
  private static final boolean ENABLED = enabled(System.getProperty("convspark.conv.winograd", "true"));

  /**
   * Tiles transformed and multiplied at a time: a block's transformed input and products (at 32
   * channels and 64 filters, 55 and 110 KB) stay in L2 beside the transformed weights (288 KB).
   * Whole sets of the multiply's register-tile rows.
   */
  static final int BLOCK = 4 * MR;

  /**
   * Tiles of the weight gradient's products at a time, their depth: a whole sample of MNIST's
   * second layer (49 tiles). Each product adds into a sum that stays in registers only along the
   * depth, so a short depth spends its time loading and storing the sum (at 24 tiles the
   * backward pass took about a fifth longer).
   */
  static final int GRADIENT_BLOCK = 64;

  /** Floats of the transforms' scratch ({@link #work} 0): 55 vectors at most (the weight gradient's). */
  static final int SCRATCH = 64 * L;

  private static final ThreadLocal<float[][]> WORK = ThreadLocal.withInitial(() -> new float[2][0]);

  /** This thread's work array {@code which} (0: the transforms' scratch, 1: a tile's pixels), at least {@code n} floats. */
  static float[] work(int which, int n) {
    float[][] w = WORK.get();
    if (w[which].length < n) {
      w[which] = new float[n];
    }
    return w[which];
  }

  /**
   * Runs every transform often enough for the JIT to compile it on the calling thread, over a
   * small plan ({@code values}: at least 4096 floats); see {@code FastKernels}' warm-up for why.
   */
  static void warmUp(float[] values) {
    WinogradConv p = new WinogradConv(4, 4, MIN_CHANNELS, 2, 2, 4, 4, MIN_CHANNELS);
    // Room for whole strips of tiles: the interleaved layout's last strip is a whole one.
    float[] in = new float[p.imageLength() + p.inputLength((p.tiles + MR - 1) / MR * MR)];
    float[] m = new float[Math.max(p.productLength(p.tiles), p.gradientLength())];
    float[] u = new float[p.weightsLength()];
    float[] out = new float[16 * MIN_CHANNELS];
    float[] scratch = new float[Math.max(SCRATCH, p.weightScratch())];
    float[] pixel = new float[4 * p.width];
    float[] grads = new float[K * K * MIN_CHANNELS * MIN_CHANNELS];
    // As many calls as the micro-kernels' warm-up makes: enough for C2 to compile each method
    // whole (not only its loops, on stack, which left some vector calls boxed in a test run).
    for (int i = 0; i < 6000; i++) {
      p.pad(values, 0, in);
      p.transformInput(in, 0, p.tiles, in, p.imageLength(), i % 2 == 0, scratch);
      p.transformOutput(m, 0, p.tiles, out, 0, i % 3 == 0 ? null : values, 0, i % 3 == 1, scratch, pixel);
      p.transformGradient(values, 0, 0, p.tiles, m, scratch, pixel);
      if (i % 10 == 0) {
        p.transformWeights(values, i % 2, i % 20 == 0, u, scratch);
        p.weightGradient(m, grads, 0, scratch);
      }
    }
  }

  /** The switch's value, {@code true} or {@code false}; any other is refused, naming the property. */
  static boolean enabled(String value) {
    return Switches.value("convspark.conv.winograd", value);
  }

  /** Whether a convolution of this geometry (and its gradients) takes this route. */
  static boolean applies(ConvGeometry g) {
    return ENABLED && g.stride() == 1 && g.kernelHeight() == K && g.kernelWidth() == K
        && g.channels() >= MIN_CHANNELS && g.padTop() <= K - 1 && g.padLeft() <= K - 1;
  }

  final int inHeight;
  final int inWidth;
  final int inChannels;
  final int padTop;
  final int padLeft;
  final int outHeight;
  final int outWidth;
  final int outChannels;
  final int tilesHigh;
  final int tilesWide;
  final int tiles;
  /** Input channels rounded up to whole vectors: the products' depth per point. */
  final int depth;
  /** Output channels rounded up to whole panels: the products' columns per point. */
  final int width;
  final int paddedHeight;
  final int paddedWidth;

  private WinogradConv(int inHeight, int inWidth, int inChannels, int padTop, int padLeft, int outHeight, int outWidth,
                       int outChannels) {
    this.inHeight = inHeight;
    this.inWidth = inWidth;
    this.inChannels = inChannels;
    this.padTop = padTop;
    this.padLeft = padLeft;
    this.outHeight = outHeight;
    this.outWidth = outWidth;
    this.outChannels = outChannels;
    this.tilesHigh = (outHeight + 1) / 2;
    this.tilesWide = (outWidth + 1) / 2;
    this.tiles = tilesHigh * tilesWide;
    this.depth = (inChannels + L - 1) / L * L;
    this.width = (outChannels + NR - 1) / NR * NR;
    // Tile (i, j) reads padded rows 2i .. 2i + 5: the last tile's window ends at 2 tilesHigh + 4.
    this.paddedHeight = 2 * tilesHigh + 4;
    this.paddedWidth = 2 * tilesWide + 4;
  }

  /** The forward pass of a convolution of geometry {@code g} with {@code filters} filters. */
  static WinogradConv forward(ConvGeometry g, int filters) {
    return new WinogradConv(g.height(), g.width(), g.channels(), g.padTop(), g.padLeft(), g.outHeight(), g.outWidth(),
        filters);
  }

  /**
   * Its input gradient: the output gradient ({@code filters} channels) padded by {@code 4 - pad}
   * on each side, correlated with the flipped, transposed weights, gives the input's size.
   */
  static WinogradConv inputGradient(ConvGeometry g, int filters) {
    return new WinogradConv(g.outHeight(), g.outWidth(), filters, K - 1 - g.padTop(), K - 1 - g.padLeft(), g.height(),
        g.width(), g.channels());
  }

  /** Floats of the padded input image. */
  int imageLength() {
    return paddedHeight * paddedWidth * depth;
  }

  /** Floats of the transformed input {@code V} of {@code count} tiles. */
  int inputLength(int count) {
    return count * POINTS * depth;
  }

  /** Floats of the products {@code M} (or the transformed output gradient) of {@code count} tiles. */
  int productLength(int count) {
    return count * POINTS * width;
  }

  /** Floats of the transformed weights. */
  int weightsLength() {
    return width * POINTS * depth;
  }

  /** Floats of the weight gradient's sum in the transformed domain, {@code [point][width][depth]}. */
  int gradientLength() {
    return POINTS * width * depth;
  }

  /** Sample {@code s} of {@code x} (this plan's input, channel-last) zero-padded into {@code img}. */
  void pad(float[] x, int s, float[] img) {
    Arrays.fill(img, 0, imageLength(), 0f);
    int rows = Math.min(inHeight, paddedHeight - padTop);
    int cols = Math.min(inWidth, paddedWidth - padLeft);
    for (int ih = 0; ih < rows; ih++) {
      int from = (s * inHeight + ih) * inWidth * inChannels;
      int to = ((ih + padTop) * paddedWidth + padLeft) * depth;
      if (depth == inChannels) {
        System.arraycopy(x, from, img, to, cols * inChannels);
      } else {
        for (int iw = 0; iw < cols; iw++) {
          System.arraycopy(x, from + iw * inChannels, img, to + iw * depth, inChannels);
        }
      }
    }
  }

  /**
   * The transformed input {@code V = B^T d B} of tiles {@code [t0, t1)} (row-major over the tile
   * grid) of a padded image, into {@code v} from {@code vOff}: as rows {@code [tile - t0][point][depth]},
   * or when {@code interleaved} as the multiply's interleaved strips (see
   * {@link FastKernels#microInterleaved}): the tiles in strips of {@code MR}, each strip
   * {@code [point][depth / L][MR][L]}, the last strip's rows past {@code t1} left as they were.
   * {@code scratch} holds {@link #POINTS} vectors.
   */
  void transformInput(float[] img, int t0, int t1, float[] v, int vOff, boolean interleaved, float[] scratch) {
    int rowStride = paddedWidth * depth;
    int pointStep = interleaved ? depth * MR : depth;
    int channelStep = interleaved ? MR : 1;
    for (int t = t0; t < t1; t++) {
      int window = (2 * (t / tilesWide) * paddedWidth + 2 * (t % tilesWide)) * depth;
      int i = t - t0;
      int out = vOff + (interleaved ? i / MR * MR * POINTS * depth + i % MR * L : i * POINTS * depth);
      inputTile(img, window, rowStride, depth, scratch, v, out, pointStep, channelStep);
    }
  }

  /**
   * One tile's {@code B^T d B}, every vector of its {@code step} channels in turn: {@code B^T} times
   * each of the window's 6 columns ({@code img[window + c + w * step + h * rowStride]}) into the
   * scratch's rows, then each row times {@code B} into point {@code (a, b)} at
   * {@code v[out + c * channelStep + (a * 6 + b) * pointStep]}. Each pass is a loop of its own over
   * one source and one destination, each index a loop-invariant base plus the line times a stride,
   * so that C2 checks each access's bounds once per loop rather than at every vector (with AVX2,
   * where a tile's vector is 8 channels, the checks were most of the transform's time: a
   * tile-vector of MNIST's second layer took 100-110 ns, now 64-90). The arithmetic is written
   * out in each pass rather than in a helper: two inlined copies of a helper ran past C2's
   * inlining budget in an earlier version and left vector operations boxed (seen in a profile).
   */
  private static void inputTile(float[] img, int window, int rowStride, int step, float[] scratch, float[] v, int out,
                                int pointStep, int channelStep) {
    for (int c = 0; c < step; c += L) {
      inputColumns(img, window + c, rowStride, step, scratch);
      inputRows(scratch, v, out + c * channelStep, pointStep);
    }
  }

  /** {@code B^T} times each of a window's 6 columns ({@code img[at + w * step + h * rowStride]}): row a of the scratch from {@code a * 6 * L}. */
  private static void inputColumns(float[] img, int at, int rowStride, int step, float[] scratch) {
    int ds = N * L;
    for (int i = 0; i < N; i++) {
      int so = at + i * step;
      int d0 = i * L;
      FloatVector x0 = FloatVector.fromArray(S, img, so);
      FloatVector x1 = FloatVector.fromArray(S, img, so + rowStride);
      FloatVector x2 = FloatVector.fromArray(S, img, so + 2 * rowStride);
      FloatVector x3 = FloatVector.fromArray(S, img, so + 3 * rowStride);
      FloatVector x4 = FloatVector.fromArray(S, img, so + 4 * rowStride);
      FloatVector x5 = FloatVector.fromArray(S, img, so + 5 * rowStride);
      x4.mul(QUARTER).add(x0).sub(x2.mul(FIVE_QUARTERS)).intoArray(scratch, d0);
      FloatVector s12 = x1.add(x2);
      FloatVector s34 = x3.add(x4);
      s12.mul(TWO_THIRDS).sub(s34.mul(SIXTH)).intoArray(scratch, d0 + ds);
      FloatVector d21 = x2.sub(x1);
      FloatVector d34 = x3.sub(x4);
      d21.mul(TWO_THIRDS).add(d34.mul(SIXTH)).intoArray(scratch, d0 + 2 * ds);
      FloatVector d31 = x3.sub(x1).mul(TWELFTH);
      FloatVector d42 = x4.sub(x2).mul(TWENTY_FOURTH);
      d31.add(d42).intoArray(scratch, d0 + 3 * ds);
      d42.sub(d31).intoArray(scratch, d0 + 4 * ds);
      x1.mul(FOUR).sub(x3.mul(FIVE)).add(x5).intoArray(scratch, d0 + 5 * ds);
    }
  }

  /** Each of the scratch's 6 rows times {@code B}: point {@code (a, b)} at {@code v[out + (a * 6 + b) * pointStep]}. */
  private static void inputRows(float[] scratch, float[] v, int out, int pointStep) {
    for (int i = 0; i < N; i++) {
      int so = i * N * L;
      int d0 = out + i * N * pointStep;
      FloatVector x0 = FloatVector.fromArray(S, scratch, so);
      FloatVector x1 = FloatVector.fromArray(S, scratch, so + L);
      FloatVector x2 = FloatVector.fromArray(S, scratch, so + 2 * L);
      FloatVector x3 = FloatVector.fromArray(S, scratch, so + 3 * L);
      FloatVector x4 = FloatVector.fromArray(S, scratch, so + 4 * L);
      FloatVector x5 = FloatVector.fromArray(S, scratch, so + 5 * L);
      x4.mul(QUARTER).add(x0).sub(x2.mul(FIVE_QUARTERS)).intoArray(v, d0);
      FloatVector s12 = x1.add(x2);
      FloatVector s34 = x3.add(x4);
      s12.mul(TWO_THIRDS).sub(s34.mul(SIXTH)).intoArray(v, d0 + pointStep);
      FloatVector d21 = x2.sub(x1);
      FloatVector d34 = x3.sub(x4);
      d21.mul(TWO_THIRDS).add(d34.mul(SIXTH)).intoArray(v, d0 + 2 * pointStep);
      FloatVector d31 = x3.sub(x1).mul(TWELFTH);
      FloatVector d42 = x4.sub(x2).mul(TWENTY_FOURTH);
      d31.add(d42).intoArray(v, d0 + 3 * pointStep);
      d42.sub(d31).intoArray(v, d0 + 4 * pointStep);
      x1.mul(FOUR).sub(x3.mul(FIVE)).add(x5).intoArray(v, d0 + 5 * pointStep);
    }
  }

  /**
   * The products of tiles {@code [t0, t1)} ({@code m}, {@code [tile - t0][point][width]}) transformed
   * back, {@code Y = A^T M A}, into sample {@code s} of {@code out} (this plan's output,
   * channel-last): each pixel written as it is when {@code bias} is null, else as the bias
   * ({@code bias[bOff ..]}, one per output channel) plus the pixel, then {@code max(., 0)} when
   * {@code relu}: the layer's bias and ReLU in the same pass. {@code scratch} holds 12 vectors and
   * {@code pixel} 4 rows of {@code width}.
   */
  void transformOutput(float[] m, int t0, int t1, float[] out, int s, float[] bias, int bOff, boolean relu,
                       float[] scratch, float[] pixel) {
    int pixels = outHeight * outWidth;
    for (int t = t0; t < t1; t++) {
      int ti = t / tilesWide;
      int tj = t % tilesWide;
      int tile = (t - t0) * POINTS * width;
      for (int f = 0; f < width; f += L) {
        outputTile(m, tile + f, width, scratch, pixel, f, width);
      }
      for (int i = 0; i < 2 && 2 * ti + i < outHeight; i++) {
        for (int j = 0; j < 2 && 2 * tj + j < outWidth; j++) {
          int at = (s * pixels + (2 * ti + i) * outWidth + 2 * tj + j) * outChannels;
          int from = (2 * i + j) * width;
          if (bias == null) {
            System.arraycopy(pixel, from, out, at, outChannels);
          } else {
            biasInto(pixel, from, bias, bOff, out, at, outChannels, relu);
          }
        }
      }
    }
  }

  /** {@code dst[d + i] = src[so + i] + bias[bOff + i]} for {@code i < len}, then {@code max(., 0)} when {@code relu}. */
  private static void biasInto(float[] src, int so, float[] bias, int bOff, float[] dst, int d, int len,
                               boolean relu) {
    float floor = relu ? 0f : Float.NEGATIVE_INFINITY;
    FloatVector low = FloatVector.broadcast(S, floor);
    int i = 0;
    for (int bound = S.loopBound(len); i < bound; i += L) {
      FloatVector.fromArray(S, src, so + i).add(FloatVector.fromArray(S, bias, bOff + i)).max(low).intoArray(dst, d + i);
    }
    for (; i < len; i++) {
      dst[d + i] = Math.max(src[so + i] + bias[bOff + i], floor);
    }
  }

  /**
   * One tile's {@code A^T M A}, one vector of channels: {@code A^T} (2 of 6) times each column b
   * of the products ({@code m[tile + (a * 6 + b) * pointStep]}) into the scratch's 2 rows, then
   * each row times {@code A}: pixel {@code (i, j)} at {@code pixel[at + (2 i + j) * pixelStep]}.
   */
  private static void outputTile(float[] m, int tile, int pointStep, float[] scratch, float[] pixel, int at,
                                 int pixelStep) {
    for (int line = 0; line < N + 2; line++) {
      boolean columns = line < N;
      int i = columns ? line : line - N;
      float[] src = columns ? m : scratch;
      int so = columns ? tile + i * pointStep : i * N * L;
      int ss = columns ? N * pointStep : L;
      float[] dst = columns ? scratch : pixel;
      int d0 = columns ? i * L : at + 2 * i * pixelStep;
      int ds = columns ? N * L : pixelStep;
      FloatVector m0 = FloatVector.fromArray(S, src, so);
      FloatVector m1 = FloatVector.fromArray(S, src, so + ss);
      FloatVector m2 = FloatVector.fromArray(S, src, so + 2 * ss);
      FloatVector m3 = FloatVector.fromArray(S, src, so + 3 * ss);
      FloatVector m4 = FloatVector.fromArray(S, src, so + 4 * ss);
      FloatVector m5 = FloatVector.fromArray(S, src, so + 5 * ss);
      m0.add(m1).add(m2).add(m3).add(m4).intoArray(dst, d0);
      m1.sub(m2).add(m3.sub(m4).mul(TWO)).add(m5).intoArray(dst, d0 + ds);
    }
  }

  /**
   * The weights {@code params[wOff ..]} ({@code (kh, kw, c) x f}, as the layer keeps them) as this
   * plan's transformed panels {@code U = G g G^T}: for the forward plan as they are, for the input
   * gradient's plan ({@code flipped}) flipped in both kernel axes with input and output channels
   * swapped. {@code scratch} holds {@code 25 * width + 30 * L} floats ({@link #weightScratch}).
   */
  void transformWeights(float[] params, int wOff, boolean flipped, float[] u, float[] scratch) {
    Arrays.fill(u, 0, weightsLength(), 0f);
    transformWeights(params, wOff, flipped, u, scratch, 0, inChannels);
  }

  /**
   * As above for input channels {@code [c0, c1)} only, into panels cleared beforehand: each
   * channel's entries of {@code u} are its own, so ranges of channels can go to several threads.
   */
  void transformWeights(float[] params, int wOff, boolean flipped, float[] u, float[] scratch, int c0, int c1) {
    int taps = K * K;
    int mid = taps * width;
    for (int c = c0; c < c1; c++) {
      // This input channel's 25 taps, each a row of the output channels (zero past the last).
      Arrays.fill(scratch, 0, mid, 0f);
      for (int tap = 0; tap < taps; tap++) {
        if (flipped) {
          // The forward weights are (kh, kw, outChannel, c) here: W'[kh][kw][c][o] = W[4-kh][4-kw][o][c].
          int from = wOff + (taps - 1 - tap) * outChannels * inChannels + c;
          for (int o = 0; o < outChannels; o++) {
            scratch[tap * width + o] = params[from + o * inChannels];
          }
        } else {
          System.arraycopy(params, wOff + (tap * inChannels + c) * outChannels, scratch, tap * width, outChannels);
        }
      }
      for (int o = 0; o < width; o += L) {
        weightTile(scratch, o, width, mid, u, ((o / NR * POINTS) * depth + c) * NR + o % NR, depth * NR);
      }
    }
  }

  /** Floats {@link #transformWeights} needs for its scratch. */
  int weightScratch() {
    return K * K * width + N * K * L;
  }

  /**
   * One input channel's {@code G g G^T}, one vector of output channels: {@code G} (6 of 5) along
   * the kernel's rows for each kernel column ({@code scratch[o + (kh * 5 + kw) * tapStep]}) into
   * the scratch from {@code mid}, then along its columns: point {@code (a, b)} at
   * {@code u[out + (a * 6 + b) * pointStep]}.
   */
  private static void weightTile(float[] scratch, int o, int tapStep, int mid, float[] u, int out, int pointStep) {
    for (int line = 0; line < K + N; line++) {
      boolean columns = line < K;
      int i = columns ? line : line - K;
      int so = columns ? o + i * tapStep : mid + i * K * L;
      int ss = columns ? K * tapStep : L;
      float[] src = scratch;
      float[] dst = columns ? scratch : u;
      int d0 = columns ? mid + i * L : out + i * N * pointStep;
      int ds = columns ? K * L : pointStep;
      FloatVector g0 = FloatVector.fromArray(S, src, so);
      FloatVector g1 = FloatVector.fromArray(S, src, so + ss);
      FloatVector g2 = FloatVector.fromArray(S, src, so + 2 * ss);
      FloatVector g3 = FloatVector.fromArray(S, src, so + 3 * ss);
      FloatVector g4 = FloatVector.fromArray(S, src, so + 4 * ss);
      g0.intoArray(dst, d0);
      FloatVector even = g0.add(g2).add(g4);
      FloatVector odd = g1.add(g3);
      even.add(odd).intoArray(dst, d0 + ds);
      even.sub(odd).intoArray(dst, d0 + 2 * ds);
      FloatVector even2 = g0.add(g2.mul(FOUR)).add(g4.mul(SIXTEEN));
      FloatVector odd2 = g1.mul(TWO).add(g3.mul(EIGHT));
      even2.add(odd2).intoArray(dst, d0 + 3 * ds);
      even2.sub(odd2).intoArray(dst, d0 + 4 * ds);
      g4.intoArray(dst, d0 + 5 * ds);
    }
  }

  /**
   * The weight gradient's second operand for tiles {@code [t0, t1)} of sample {@code s}: each 2 x 2
   * tile of the output gradient {@code dy} (this plan's output, zero past its edges) transformed as
   * a filter of F(5 x 5, 2 x 2), {@code G' t G'^T}, into {@code d} ({@code [tile - t0][point][width]}).
   * {@code pixel} holds 4 rows of {@code width}, {@code scratch} 12 vectors.
   */
  void transformGradient(float[] dy, int s, int t0, int t1, float[] d, float[] scratch, float[] pixel) {
    int pixels = outHeight * outWidth;
    for (int t = t0; t < t1; t++) {
      int ti = t / tilesWide;
      int tj = t % tilesWide;
      for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
          int to = (2 * i + j) * width;
          if (2 * ti + i < outHeight && 2 * tj + j < outWidth) {
            System.arraycopy(dy, (s * pixels + (2 * ti + i) * outWidth + 2 * tj + j) * outChannels, pixel, to,
                outChannels);
            Arrays.fill(pixel, to + outChannels, to + width, 0f);
          } else {
            Arrays.fill(pixel, to, to + width, 0f);
          }
        }
      }
      int out = (t - t0) * POINTS * width;
      for (int f = 0; f < width; f += L) {
        gradientTile(pixel, f, width, scratch, d, out + f, width);
      }
    }
  }

  /**
   * One 2 x 2 tile's {@code G' t G'^T}, one vector of channels: {@code G'} (6 of 2) down each of
   * the tile's 2 columns ({@code pixel[f + (2 i + j) * pixelStep]}) into the scratch, then along
   * each of the 6 rows: point {@code (a, b)} at {@code d[out + (a * 6 + b) * pointStep]}.
   */
  private static void gradientTile(float[] pixel, int f, int pixelStep, float[] scratch, float[] d, int out,
                                   int pointStep) {
    for (int line = 0; line < 2 + N; line++) {
      boolean columns = line < 2;
      int i = columns ? line : line - 2;
      float[] src = columns ? pixel : scratch;
      int so = columns ? f + i * pixelStep : i * 2 * L;
      int ss = columns ? 2 * pixelStep : L;
      float[] dst = columns ? scratch : d;
      int d0 = columns ? i * L : out + i * N * pointStep;
      int ds = columns ? 2 * L : pointStep;
      FloatVector t0 = FloatVector.fromArray(S, src, so);
      FloatVector t1 = FloatVector.fromArray(S, src, so + ss);
      t0.intoArray(dst, d0);
      t0.add(t1).intoArray(dst, d0 + ds);
      t0.sub(t1).intoArray(dst, d0 + 2 * ds);
      FloatVector t2 = t1.mul(TWO);
      t0.add(t2).intoArray(dst, d0 + 3 * ds);
      t0.sub(t2).intoArray(dst, d0 + 4 * ds);
      t1.intoArray(dst, d0 + 5 * ds);
    }
  }

  /**
   * The weight gradient from its sum in the transformed domain ({@code acc}, {@code [point][width][depth]}:
   * output channel f's row of input channels), {@code dW = A'^T acc A'} with A'^T the 5 x 6 of
   * F(5 x 5, 2 x 2), written into {@code grads[wOff ..]} in the weights' layout. {@code scratch}
   * holds 55 vectors.
   */
  void weightGradient(float[] acc, float[] grads, int wOff, float[] scratch) {
    weightGradient(acc, grads, wOff, scratch, 0, outChannels);
  }

  /** As above for output channels {@code [f0, f1)} only, whose entries of {@code grads} are their own. */
  void weightGradient(float[] acc, float[] grads, int wOff, float[] scratch, int f0, int f1) {
    int plane = width * depth;
    for (int f = f0; f < f1; f++) {
      for (int c = 0; c < depth; c += L) {
        kernelTile(acc, f * depth + c, plane, scratch);
        int lanes = Math.min(L, inChannels - c);
        for (int tap = 0; tap < K * K; tap++) {
          int src = (N * K + tap) * L;
          int to = wOff + (tap * inChannels + c) * outChannels + f;
          for (int i = 0; i < lanes; i++) {
            grads[to + i * outChannels] = scratch[src + i];
          }
        }
      }
    }
  }

  /**
   * One (output, input channels) pair's {@code A'^T M A'}, one vector of input channels: {@code A'^T}
   * (5 of 6) down each column b ({@code acc[from + (a * 6 + b) * plane]}) into the scratch, then
   * along each of the 5 rows: tap {@code (kh, kw)} at {@code scratch[(30 + kh * 5 + kw) * L]}.
   */
  private static void kernelTile(float[] acc, int from, int plane, float[] scratch) {
    for (int line = 0; line < N + K; line++) {
      boolean columns = line < N;
      int i = columns ? line : line - N;
      float[] src = columns ? acc : scratch;
      int so = columns ? from + i * plane : i * N * L;
      int ss = columns ? N * plane : L;
      float[] dst = scratch;
      int d0 = columns ? i * L : (N * K + i * K) * L;
      int ds = columns ? N * L : L;
      FloatVector m0 = FloatVector.fromArray(S, src, so);
      FloatVector m1 = FloatVector.fromArray(S, src, so + ss);
      FloatVector m2 = FloatVector.fromArray(S, src, so + 2 * ss);
      FloatVector m3 = FloatVector.fromArray(S, src, so + 3 * ss);
      FloatVector m4 = FloatVector.fromArray(S, src, so + 4 * ss);
      FloatVector m5 = FloatVector.fromArray(S, src, so + 5 * ss);
      FloatVector s12 = m1.add(m2);
      FloatVector d12 = m1.sub(m2);
      FloatVector s34 = m3.add(m4);
      FloatVector d34 = m3.sub(m4);
      m0.add(s12).add(s34).intoArray(dst, d0);
      d12.add(d34.mul(TWO)).intoArray(dst, d0 + ds);
      s12.add(s34.mul(FOUR)).intoArray(dst, d0 + 2 * ds);
      d12.add(d34.mul(EIGHT)).intoArray(dst, d0 + 3 * ds);
      s12.add(s34.mul(SIXTEEN)).add(m5).intoArray(dst, d0 + 4 * ds);
    }
  }
}
