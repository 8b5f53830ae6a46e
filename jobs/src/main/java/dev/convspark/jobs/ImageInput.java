package dev.convspark.jobs;

import dev.convspark.tensor.Shape;
import java.io.Serializable;

/**
 * The model's input as images are read into it: {@code h x w} pixels of {@code c} channels (1:
 * gray, colour images as luma 0.299 R + 0.587 G + 0.114 B; 3: blue, green, red, the order of
 * Spark's image struct, gray images in all three), values in [0, 1]. With {@code resize}, an image
 * of another size is scaled to it (each axis on its own, the aspect ratio not kept): where it
 * shrinks, each output pixel is the mean of the input area it covers (so a picture of 2 x 2 blocks
 * comes back exactly); where it grows, the bilinear interpolation of the four nearest. Without,
 * such an image is refused, naming it.
 *
 * @param c 1 or 3 for an image input, 0 for one that is not (a flat input of a square size, such as
 *          softmax regression's 784, reads square gray images)
 */
record ImageInput(int h, int w, int c, boolean resize) implements Serializable {

  /** The input of a model whose input shape is {@code input}. */
  static ImageInput of(Shape input, boolean resize) {
    int side = (int) Math.round(Math.sqrt(input.size()));
    if (input.isImage()) {
      return new ImageInput(input.height(), input.width(), input.channels(), resize);
    }
    return new ImageInput(side, side, side * side == input.size() ? 1 : 0, resize);
  }

  /** Values an image becomes. */
  int size() {
    return h * w * c;
  }

  /** Fails when images cannot be the model's input ({@code what}: what is read, for the message). */
  void check(String what) {
    if (c != 1 && c != 3) {
      throw new UsageException(what + " are read as h x w images of 1 channel (gray) or 3 (blue, green, red), but the"
          + " model's input is " + (c == 0 ? "not an image" : c + " channels"));
    }
  }

  /** Why image {@code what} of {@code iw x ih} pixels cannot be read, or null when it can. */
  String sizeProblem(String what, int iw, int ih) {
    if (resize || (ih == h && iw == w)) {
      return null;
    }
    return what + " is " + iw + "x" + ih + " pixels, but the model reads " + w + "x" + h
        + "; resize the images first, or give --resize";
  }

  /** Pixel {@code i} of a gray image, value {@code v} (0 to 255), into {@code out}. */
  void putGray(double[] out, int i, int v) {
    for (int k = 0; k < c; k++) {
      out[i * c + k] = v / 255.0;
    }
  }

  /** Pixel {@code i} of a colour image into {@code out}: its luma with one channel, else blue, green, red. */
  void putColour(double[] out, int i, int b, int g, int r) {
    if (c == 1) {
      out[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0;
    } else {
      out[i * 3] = b / 255.0;
      out[i * 3 + 1] = g / 255.0;
      out[i * 3 + 2] = r / 255.0;
    }
  }

  /** {@code src}, an image of {@code ih x iw} pixels of this input's channels, at this input's size. */
  double[] fit(double[] src, int ih, int iw) {
    if (ih == h && iw == w) {
      return src;
    }
    Axis ys = Axis.of(ih, h);
    Axis xs = Axis.of(iw, w);
    // Rows first (h x iw), then columns.
    double[] rows = new double[h * iw * c];
    for (int oy = 0; oy < h; oy++) {
      for (int t = 0; t < ys.weights[oy].length; t++) {
        double wt = ys.weights[oy][t];
        int from = (ys.first[oy] + t) * iw * c;
        for (int j = 0; j < iw * c; j++) {
          rows[oy * iw * c + j] += wt * src[from + j];
        }
      }
    }
    double[] out = new double[h * w * c];
    for (int oy = 0; oy < h; oy++) {
      for (int ox = 0; ox < w; ox++) {
        for (int t = 0; t < xs.weights[ox].length; t++) {
          double wt = xs.weights[ox][t];
          int from = (oy * iw + xs.first[ox] + t) * c;
          for (int k = 0; k < c; k++) {
            out[(oy * w + ox) * c + k] += wt * rows[from + k];
          }
        }
      }
    }
    return out;
  }

  /** One axis of a resampling from {@code m} values to {@code n}: each output's first input and its inputs' weights. */
  private record Axis(int[] first, double[][] weights) {

    static Axis of(int m, int n) {
      int[] first = new int[n];
      double[][] weights = new double[n][];
      double scale = (double) m / n;
      for (int o = 0; o < n; o++) {
        if (scale >= 1) {
          // The mean over [o * scale, (o + 1) * scale): whole inputs weigh 1 / scale, the ends their part of it.
          double a = o * scale;
          double b = Math.min(m, a + scale);
          int i0 = (int) Math.floor(a);
          int i1 = Math.min(m - 1, (int) Math.ceil(b) - 1);
          first[o] = i0;
          weights[o] = new double[i1 - i0 + 1];
          for (int i = i0; i <= i1; i++) {
            weights[o][i - i0] = (Math.min(b, i + 1) - Math.max(a, i)) / scale;
          }
        } else {
          // Bilinear at the output pixel's centre, clamped at the edges.
          double x = Math.max(0, Math.min(m - 1, (o + 0.5) * scale - 0.5));
          int i0 = (int) Math.floor(x);
          int i1 = Math.min(m - 1, i0 + 1);
          double f = x - i0;
          first[o] = i0;
          weights[o] = i1 == i0 ? new double[] {1} : new double[] {1 - f, f};
        }
      }
      return new Axis(first, weights);
    }
  }
}
