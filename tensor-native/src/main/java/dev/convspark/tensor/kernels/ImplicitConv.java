package dev.convspark.tensor.kernels;

import static dev.convspark.tensor.kernels.FastKernels.MR;
import static dev.convspark.tensor.kernels.FastKernels.NR;
import static dev.convspark.tensor.kernels.FastKernels.SIX;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A stride-1 convolution over several channels as a multiply that reads its patches where they
 * lie (an implicit GEMM): no patch matrix is unfolded and no patch gradient folded back (at
 * 14 x 14 x 32 with a 5 x 5 kernel, MNIST's second layer, each is 627 KB per sample, and the two
 * together more than L2). Each sample is zero-padded once into a small image at the padded width
 * {@code Wp >= outWidth + kernelWidth - 1}: output pixel {@code (oh, ow)} is row {@code v = oh * Wp
 * + ow}, and in a channel-major padded image patch element {@code (kh, kw, c)} of consecutive rows
 * is consecutive floats, {@code img[c * plane + kh * Wp + kw + v]}, which the micro-kernel
 * broadcasts from one offset per depth step (a table of the patch's offsets). The three products
 * of a training step:
 *
 * <ul>
 *   <li>forward: {@code y = patches W}, over the channel-major padded input;
 *   <li>input gradient: the same product over the channel-major output gradient, padded by
 *       {@code kernel - 1 - pad}, with the weights flipped in both kernel axes and transposed
 *       (a full convolution: {@code dx = conv(dy, flip(W)^T)});
 *   <li>weight gradient: {@code dW = patches^T dy}, the depth being the output pixels: over the
 *       channel-last padded input, where one kernel row's {@code kernelWidth * channels} patch
 *       values of a pixel are consecutive floats, found through a table of the pixels' offsets.
 * </ul>
 *
 * <p>All tiles are whole: columns are padded to panels of {@code NR} and rows to whole tiles, and
 * the extra values (read from the padding, or past a row's end) land in columns or rows that are
 * dropped. The forward products cut each line of output pixels into tiles of MR or 7 rows,
 * whichever computes the fewest extra rows for the line's width ({@link #HEIGHTS}).
 */
final class ImplicitConv {

  private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
  private static final int L = S.length();

  /** Off with {@code -Dconvspark.conv.implicit=false}: the unfolding route, for comparisons. */
  private static final boolean ENABLED = enabled(System.getProperty("convspark.conv.implicit", "true"));

  /** The switch's value, {@code true} or {@code false}; any other is refused, naming the property. */
  static boolean enabled(String value) {
    return Switches.value("convspark.conv.implicit", value);
  }
  /**
   * Whether a one-channel convolution (a first layer over gray images) takes this route rather
   * than its shifted-image route in {@link FastKernels}: where the vectors are 512 bits wide.
   * conv1 at batch 50 on 2 threads (ms forward / backward), AVX-512: 0.76-0.82 / 0.51-0.56 here
   * against 1.47-1.66 / 0.69-0.74; AVX2: 1.60-1.76 / 0.65 against 1.40-1.43 / 0.73-0.84. (Since
   * then the shifted route's forward pass keeps its tile in registers across the window, {@code
   * FastKernels.microWindow}: 0.8 to 1.1 ms with AVX2 in four rounds of five. On AVX-512 it then ran as this route does
   * forward, 0.75-1.42 ms against 0.84-1.39 in the same rounds, and slower backward, 0.67-0.79
   * against 0.56-0.67, so this route stays there.)
   */
  private static final boolean ONE_CHANNEL = L >= 16;
  /**
   * The tile heights a line of output pixels can be cut into: 7 rows x 2 vectors where the vectors
   * are 512 bits wide (32 registers hold the 14 accumulators, two B vectors and the broadcast;
   * AVX2's 16 do not), and {@code FastKernels.MR} rows (6, or 5 where the JIT needs more
   * registers). A line of {@code w} pixels takes the height that computes the fewest rows, {@code
   * ceil(w / R) * R} (the extra rows run into the padding and are dropped): for MNIST's 14, 7 (14
   * rows) with AVX-512 and MR with AVX2 (6: 18 rows; 5: 15). Measured on conv2 with AVX2, single
   * thread, useful GFLOP/s: 6 rows 85-86; 5 rows (15 computed) 86; 7 rows x 1 vector 69; 14 rows x
   * 1 vector 54 (registers spilled); so AVX2 keeps MR.
   */
  private static final int[] HEIGHTS = L >= 16 ? new int[] {7, MR} : new int[] {MR};
  private final ConvGeometry g;
  /** The tile heights of the forward product's and the input gradient's lines. */
  private final int forwardHeight;
  private final int backwardHeight;
  private final int filters;
  /** The padded width of the forward pass and the weight gradient (at least {@code outWidth + kernelWidth - 1}). */
  private final int wp;
  /** The padded height: the rows the output pixels' windows cover. */
  private final int hp;
  /** Rows of the forward product's output buffer: every tile of every line. */
  final int rows;
  /** Filters padded to whole panels: the width of the forward pass's output buffer. */
  final int filterPanels;
  /** Floats of the forward pass's padded channel-major image (reads past the planes included). */
  final int imageLength;
  /** Per depth step (patch element in the weights' order), its offset in the padded image. */
  private final int[] forwardOffsets;
  /** The input gradient's padded width and height, rows, padded channels, image length, offsets. */
  private final int dwp;
  private final int dhp;
  final int dxRows;
  final int channelPanels;
  final int dyImageLength;
  private final int[] backwardOffsets;
  /** Per output pixel, where its patch starts in the channel-last padded image. */
  private final int[] pixelOffsets;
  /** A kernel row's patch values ({@code kernelWidth * channels}) padded to whole strips. */
  final int rowValues;
  /** Floats of the weight gradient's padded channel-last image. */
  final int lastImageLength;

  ImplicitConv(ConvGeometry g, int filters) {
    this.g = g;
    this.filters = filters;
    int kh = g.kernelHeight();
    int kw = g.kernelWidth();
    int ch = g.channels();
    // A line's last tile may run past its pixels into the padding, never into the next line
    // (whose rows it would add to twice): the padded width is widened where a tile needs it.
    forwardHeight = height(g.outWidth());
    wp = Math.max(g.outWidth() + kw - 1, tiled(g.outWidth(), forwardHeight));
    hp = g.outHeight() + kh - 1;
    rows = (g.outHeight() - 1) * wp + tiled(g.outWidth(), forwardHeight);
    filterPanels = (filters + NR - 1) / NR * NR;
    forwardOffsets = new int[g.patchSize()];
    int plane = hp * wp;
    for (int i = 0, p = 0; i < kh; i++) {
      for (int j = 0; j < kw; j++) {
        for (int c = 0; c < ch; c++) {
          forwardOffsets[p++] = c * plane + i * wp + j;
        }
      }
    }
    imageLength = (ch - 1) * plane + (kh - 1) * wp + kw - 1 + rows;
    backwardHeight = height(g.width());
    dwp = Math.max(g.width() + kw - 1, tiled(g.width(), backwardHeight));
    dhp = g.height() + kh - 1;
    dxRows = (g.height() - 1) * dwp + tiled(g.width(), backwardHeight);
    channelPanels = (ch + NR - 1) / NR * NR;
    backwardOffsets = new int[kh * kw * filters];
    int dPlane = dhp * dwp;
    for (int i = 0, p = 0; i < kh; i++) {
      for (int j = 0; j < kw; j++) {
        for (int f = 0; f < filters; f++) {
          backwardOffsets[p++] = f * dPlane + i * dwp + j;
        }
      }
    }
    dyImageLength = (filters - 1) * dPlane + (kh - 1) * dwp + kw - 1 + dxRows;
    pixelOffsets = new int[g.outputPixels()];
    for (int oh = 0, u = 0; oh < g.outHeight(); oh++) {
      for (int ow = 0; ow < g.outWidth(); ow++) {
        pixelOffsets[u++] = (oh * wp + ow) * ch;
      }
    }
    rowValues = (kw * ch + MR - 1) / MR * MR;
    lastImageLength = (hp * wp + 1) * ch + rowValues;
  }

  /**
   * The depth of one slice of a product {@code k} deep whose kernel rows are {@code rowDepth}
   * deep: all of it where its B panel fits in half of L1 (a first layer's few channels), else one
   * kernel row at a time, so that a slice of B is reused by every tile while it is still cached.
   */
  private static int slice(int k, int rowDepth) {
    return (long) k * NR * Float.BYTES <= CacheSizes.local().l1Bytes() / 2 ? k : rowDepth;
  }

  /** The tile height for lines of {@code width} pixels (see {@link #HEIGHTS}). */
  static int height(int width) {
    int best = HEIGHTS[0];
    for (int r : HEIGHTS) {
      if (tiled(width, r) < tiled(width, best)) {
        best = r;
      }
    }
    return best;
  }

  /** Rows computed for a line of {@code width} pixels in tiles of {@code r}. */
  private static int tiled(int width, int r) {
    return (width + r - 1) / r * r;
  }

  /**
   * Whether a convolution takes this route: stride 1, several channels or 512-bit vectors (see
   * {@link #ONE_CHANNEL}), and padding within the kernel (as SAME and VALID give), so that the
   * input gradient's full convolution needs no negative padding.
   */
  static boolean applies(ConvGeometry g) {
    return ENABLED && g.stride() == 1 && (g.channels() > 1 || ONE_CHANNEL) && g.padTop() <= g.kernelHeight() - 1
        && g.padLeft() <= g.kernelWidth() - 1;
  }

  /** Floats of the packed flipped weights {@link #packFlipped} writes. */
  int flippedLength() {
    return channelPanels * g.kernelHeight() * g.kernelWidth() * filters;
  }

  /**
   * The input gradient's B operand as panels of {@code NR} channels: depth step {@code (i, j, f)}
   * of channel {@code c} holds {@code W[(kh-1-i, kw-1-j, c), f]}, zero past the last channel.
   */
  void packFlipped(float[] params, int wOff, float[] out) {
    int kh = g.kernelHeight();
    int kw = g.kernelWidth();
    int ch = g.channels();
    int k = kh * kw * filters;
    Arrays.fill(out, 0, flippedLength(), 0f);
    for (int q = 0; q * NR < ch; q++) {
      for (int i = 0; i < kh; i++) {
        for (int j = 0; j < kw; j++) {
          int from = wOff + (((kh - 1 - i) * kw + (kw - 1 - j)) * ch) * filters;
          for (int f = 0; f < filters; f++) {
            int o = (q * k + (i * kw + j) * filters + f) * NR;
            for (int c = q * NR, end = Math.min(ch, c + NR); c < end; c++) {
              out[o + c - q * NR] = params[from + c * filters + f];
            }
          }
        }
      }
    }
  }

  /** Sample {@code s} of {@code x} (NHWC), zero-padded and channel-major, into {@code img}. */
  void padChannelMajor(float[] x, int s, float[] img) {
    transposePadded(x, s * g.inputSize(), g.height(), g.width(), g.channels(), g.padTop(), g.padLeft(), hp, wp, img,
        imageLength);
  }

  /** Sample {@code s} of {@code dy}, padded by {@code kernel - 1 - pad} and channel-major. */
  void padGradient(float[] dy, int s, float[] img) {
    transposePadded(dy, s * g.outputPixels() * filters, g.outHeight(), g.outWidth(), filters,
        g.kernelHeight() - 1 - g.padTop(), g.kernelWidth() - 1 - g.padLeft(), dhp, dwp, img, dyImageLength);
  }

  private static void transposePadded(float[] x, int base, int h, int w, int ch, int top, int left, int hp, int wp,
                                      float[] img, int length) {
    Arrays.fill(img, 0, length, 0f);
    int plane = hp * wp;
    for (int ih = 0; ih < h && ih + top < hp; ih++) {
      for (int iw = 0; iw < w && iw + left < wp; iw++) {
        int from = base + (ih * w + iw) * ch;
        int to = (ih + top) * wp + iw + left;
        for (int c = 0; c < ch; c++) {
          img[to + c * plane] = x[from + c];
        }
      }
    }
  }

  /**
   * The forward product of one padded sample: {@code out} ({@code rows x filterPanels}) gets the
   * convolution at the padded width; {@code w} is the weights as panels ({@link
   * FastKernels#packPanels}).
   */
  void forward(float[] img, float[] w, float[] out) {
    int k = g.patchSize();
    product(img, forwardOffsets, k, slice(k, g.kernelWidth() * g.channels()), w, out, filterPanels, g.outHeight(),
        g.outWidth(), wp, forwardHeight);
  }

  /**
   * {@code out (rows x ld) = A B} where A's row v, depth p is {@code img[v + offsets[p]]} and B is
   * panels {@code k} deep, in slices of {@code kc} ({@link #slice}), added up in {@code out}. The
   * rows are {@code lines} lines of {@code width} pixels {@code stride} apart, each cut into
   * tiles of {@code height} rows.
   */
  private static void product(float[] img, int[] offsets, int k, int kc, float[] b, float[] out, int ld, int lines,
                              int width, int stride, int height) {
    for (int j = 0; j < ld; j += NR) {
      for (int p = 0; p < k; p += kc) {
        int bOff = (j / NR * k + p) * NR;
        boolean add = p > 0;
        for (int line = 0; line < lines; line++) {
          for (int v = line * stride, end = v + width; v < end; v += height) {
            if (height == 7) {
              microTableSeven(kc, img, v, offsets, p, b, bOff, out, v * ld + j, ld, add);
            } else {
              microTable(kc, img, v, offsets, p, b, bOff, out, v * ld + j, ld, add);
            }
          }
        }
      }
    }
  }

  /**
   * Writes the output pixels of {@link #forward}'s {@code out} plus the bias (at
   * {@code params[bOff]} on), through a ReLU when {@code relu}, as sample {@code s} of {@code y}.
   */
  void writeOutput(float[] out, int s, float[] y, float[] params, int bOff, boolean relu) {
    int ow = g.outWidth();
    for (int oh = 0; oh < g.outHeight(); oh++) {
      for (int i = 0; i < ow; i++) {
        FastKernels.biasedInto(out, (oh * wp + i) * filterPanels, params, bOff, y,
            (s * g.outputPixels() + oh * ow + i) * filters, filters, relu);
      }
    }
  }

  /** The input gradient of one sample from its padded output gradient, into sample {@code s} of {@code dx}. */
  void inputGradient(float[] dyImg, float[] flipped, float[] out, int s, float[] dx) {
    int k = g.kernelHeight() * g.kernelWidth() * filters;
    product(dyImg, backwardOffsets, k, slice(k, g.kernelWidth() * filters), flipped,
        out, channelPanels, g.height(), g.width(), dwp, backwardHeight);
    int ch = g.channels();
    for (int ih = 0; ih < g.height(); ih++) {
      for (int iw = 0; iw < g.width(); iw++) {
        System.arraycopy(out, (ih * dwp + iw) * channelPanels, dx, (s * g.inputSize() + (ih * g.width() + iw) * ch), ch);
      }
    }
  }

  /** Sample {@code s} of {@code x} zero-padded at the padded width, channel-last, into {@code img}. */
  void padChannelLast(float[] x, int s, float[] img) {
    Arrays.fill(img, 0, lastImageLength, 0f);
    int ch = g.channels();
    int w = Math.min(g.width(), wp - g.padLeft());
    for (int ih = 0; ih < g.height() && ih + g.padTop() < hp; ih++) {
      System.arraycopy(x, s * g.inputSize() + ih * g.width() * ch, img, ((ih + g.padTop()) * wp + g.padLeft()) * ch, w * ch);
    }
  }

  /** Floats of the output gradient as panels ({@link #packGradient}). */
  int gradientPanelsLength() {
    return filterPanels * g.outputPixels();
  }

  /** Sample {@code s}'s output gradient as panels of {@code NR} filters (panel q's pixel u at {@code (q * pixels + u) * NR}). */
  void packGradient(float[] dy, int s, float[] out) {
    int pix = g.outputPixels();
    FastKernels.packPanels(false, dy, s * pix * filters, filters, pix, filters, out);
  }

  /**
   * Adds (or with {@code first}, sets) one sample's weight gradient into {@code acc}: row
   * {@code kh * rowValues + q} (patch value q of kernel row kh), {@code filterPanels} wide. The
   * depth is the output pixels: pixel u's patch values for kernel row kh start at
   * {@code img[kh * Wp * channels + pixelOffsets[u]]}, consecutive floats.
   */
  void weightGradient(float[] img, float[] dyPanels, float[] acc, boolean first) {
    int ch = g.channels();
    int pix = g.outputPixels();
    for (int kh = 0; kh < g.kernelHeight(); kh++) {
      for (int q = 0; q < rowValues; q += MR) {
        for (int j = 0; j < filterPanels; j += NR) {
          microTable(pix, img, kh * wp * ch + q, pixelOffsets, 0, dyPanels, j / NR * pix * NR, acc,
              (kh * rowValues + q) * filterPanels + j, filterPanels, !first);
        }
      }
    }
  }

  /** Floats of a weight-gradient sum {@link #weightGradient} adds into. */
  int gradientLength() {
    return g.kernelHeight() * rowValues * filterPanels;
  }

  /** The weight gradient {@code acc} in the weights' layout ({@code patch x filters}) at {@code grads[off]}. */
  void copyGradient(float[] acc, float[] grads, int off) {
    int values = g.kernelWidth() * g.channels();
    for (int kh = 0; kh < g.kernelHeight(); kh++) {
      for (int q = 0; q < values; q++) {
        System.arraycopy(acc, (kh * rowValues + q) * filterPanels, grads, off + (kh * values + q) * filters, filters);
      }
    }
  }

  /**
   * One whole {@code MR x NR} tile, {@code C = A B}: A's row i, depth p at
   * {@code a[aOff + offsets[p] + i]} (the MR rows of a depth step are consecutive floats, found
   * through one table look-up), B's row p at {@code bp[bOff + p * NR]}.
   */
  static void microTable(int kc, float[] a, int aOff, int[] offsets, int offOff, float[] bp, int bOff, float[] c,
                         int cOff, int ldc, boolean add) {
    FloatVector c00 = FloatVector.zero(S);
    FloatVector c01 = c00;
    FloatVector c10 = c00;
    FloatVector c11 = c00;
    FloatVector c20 = c00;
    FloatVector c21 = c00;
    FloatVector c30 = c00;
    FloatVector c31 = c00;
    FloatVector c40 = c00;
    FloatVector c41 = c00;
    FloatVector c50 = c00;
    FloatVector c51 = c00;
    for (int p = 0; p < kc; p++) {
      int bo = bOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      int ao = aOff + offsets[offOff + p];
      FloatVector x = FloatVector.broadcast(S, a[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[ao + 1]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[ao + 2]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[ao + 3]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[ao + 4]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      if (SIX) {
        x = FloatVector.broadcast(S, a[ao + 5]);
        c50 = b0.fma(x, c50);
        c51 = b1.fma(x, c51);
      }
    }
    if (add) {
      c00 = c00.add(FloatVector.fromArray(S, c, cOff));
      c01 = c01.add(FloatVector.fromArray(S, c, cOff + L));
      c10 = c10.add(FloatVector.fromArray(S, c, cOff + ldc));
      c11 = c11.add(FloatVector.fromArray(S, c, cOff + ldc + L));
      c20 = c20.add(FloatVector.fromArray(S, c, cOff + 2 * ldc));
      c21 = c21.add(FloatVector.fromArray(S, c, cOff + 2 * ldc + L));
      c30 = c30.add(FloatVector.fromArray(S, c, cOff + 3 * ldc));
      c31 = c31.add(FloatVector.fromArray(S, c, cOff + 3 * ldc + L));
      c40 = c40.add(FloatVector.fromArray(S, c, cOff + 4 * ldc));
      c41 = c41.add(FloatVector.fromArray(S, c, cOff + 4 * ldc + L));
      if (SIX) {
        c50 = c50.add(FloatVector.fromArray(S, c, cOff + 5 * ldc));
        c51 = c51.add(FloatVector.fromArray(S, c, cOff + 5 * ldc + L));
      }
    }
    c00.intoArray(c, cOff);
    c01.intoArray(c, cOff + L);
    c10.intoArray(c, cOff + ldc);
    c11.intoArray(c, cOff + ldc + L);
    c20.intoArray(c, cOff + 2 * ldc);
    c21.intoArray(c, cOff + 2 * ldc + L);
    c30.intoArray(c, cOff + 3 * ldc);
    c31.intoArray(c, cOff + 3 * ldc + L);
    c40.intoArray(c, cOff + 4 * ldc);
    c41.intoArray(c, cOff + 4 * ldc + L);
    if (SIX) {
      c50.intoArray(c, cOff + 5 * ldc);
      c51.intoArray(c, cOff + 5 * ldc + L);
    }
  }

  /**
   * {@link #microTable} with 7 rows (see {@link #HEIGHTS}): one whole {@code 7 x NR} tile, {@code C = A B}: A's row i, depth p at
   * {@code a[aOff + offsets[p] + i]} (the seven rows of a depth step are consecutive floats, found
   * through one table look-up), B's row p at {@code bp[bOff + p * NR]}.
   */
  static void microTableSeven(int kc, float[] a, int aOff, int[] offsets, int offOff, float[] bp, int bOff, float[] c,
                         int cOff, int ldc, boolean add) {
    FloatVector c00 = FloatVector.zero(S);
    FloatVector c01 = c00;
    FloatVector c10 = c00;
    FloatVector c11 = c00;
    FloatVector c20 = c00;
    FloatVector c21 = c00;
    FloatVector c30 = c00;
    FloatVector c31 = c00;
    FloatVector c40 = c00;
    FloatVector c41 = c00;
    FloatVector c50 = c00;
    FloatVector c51 = c00;
    FloatVector c60 = c00;
    FloatVector c61 = c00;
    for (int p = 0; p < kc; p++) {
      int bo = bOff + p * NR;
      FloatVector b0 = FloatVector.fromArray(S, bp, bo);
      FloatVector b1 = FloatVector.fromArray(S, bp, bo + L);
      int ao = aOff + offsets[offOff + p];
      FloatVector x = FloatVector.broadcast(S, a[ao]);
      c00 = b0.fma(x, c00);
      c01 = b1.fma(x, c01);
      x = FloatVector.broadcast(S, a[ao + 1]);
      c10 = b0.fma(x, c10);
      c11 = b1.fma(x, c11);
      x = FloatVector.broadcast(S, a[ao + 2]);
      c20 = b0.fma(x, c20);
      c21 = b1.fma(x, c21);
      x = FloatVector.broadcast(S, a[ao + 3]);
      c30 = b0.fma(x, c30);
      c31 = b1.fma(x, c31);
      x = FloatVector.broadcast(S, a[ao + 4]);
      c40 = b0.fma(x, c40);
      c41 = b1.fma(x, c41);
      x = FloatVector.broadcast(S, a[ao + 5]);
      c50 = b0.fma(x, c50);
      c51 = b1.fma(x, c51);
      x = FloatVector.broadcast(S, a[ao + 6]);
      c60 = b0.fma(x, c60);
      c61 = b1.fma(x, c61);
    }
    if (add) {
      c00 = c00.add(FloatVector.fromArray(S, c, cOff));
      c01 = c01.add(FloatVector.fromArray(S, c, cOff + L));
      c10 = c10.add(FloatVector.fromArray(S, c, cOff + ldc));
      c11 = c11.add(FloatVector.fromArray(S, c, cOff + ldc + L));
      c20 = c20.add(FloatVector.fromArray(S, c, cOff + 2 * ldc));
      c21 = c21.add(FloatVector.fromArray(S, c, cOff + 2 * ldc + L));
      c30 = c30.add(FloatVector.fromArray(S, c, cOff + 3 * ldc));
      c31 = c31.add(FloatVector.fromArray(S, c, cOff + 3 * ldc + L));
      c40 = c40.add(FloatVector.fromArray(S, c, cOff + 4 * ldc));
      c41 = c41.add(FloatVector.fromArray(S, c, cOff + 4 * ldc + L));
      c50 = c50.add(FloatVector.fromArray(S, c, cOff + 5 * ldc));
      c51 = c51.add(FloatVector.fromArray(S, c, cOff + 5 * ldc + L));
      c60 = c60.add(FloatVector.fromArray(S, c, cOff + 6 * ldc));
      c61 = c61.add(FloatVector.fromArray(S, c, cOff + 6 * ldc + L));
    }
    c00.intoArray(c, cOff);
    c01.intoArray(c, cOff + L);
    c10.intoArray(c, cOff + ldc);
    c11.intoArray(c, cOff + ldc + L);
    c20.intoArray(c, cOff + 2 * ldc);
    c21.intoArray(c, cOff + 2 * ldc + L);
    c30.intoArray(c, cOff + 3 * ldc);
    c31.intoArray(c, cOff + 3 * ldc + L);
    c40.intoArray(c, cOff + 4 * ldc);
    c41.intoArray(c, cOff + 4 * ldc + L);
    c50.intoArray(c, cOff + 5 * ldc);
    c51.intoArray(c, cOff + 5 * ldc + L);
    c60.intoArray(c, cOff + 6 * ldc);
    c61.intoArray(c, cOff + 6 * ldc + L);
  }
}
