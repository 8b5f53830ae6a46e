package dev.convspark.ml.feature;

import java.awt.color.ColorSpace;
import java.awt.image.BufferedImage;
import java.awt.image.Raster;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.Serializable;
import javax.imageio.ImageIO;
import org.apache.spark.sql.Row;

/**
 * How an image becomes a model's input: {@code height x width} pixels of {@code channels}
 * channels, in NHWC order, values in [0, 1]. With one channel, gray images as they are and colour
 * ones as luma (0.299 R + 0.587 G + 0.114 B); with three, blue, green, red, the order of Spark's
 * image struct (so that a model trained on Spark's {@code image} rows as they are reads the same
 * files alike), gray images in all three. With {@code resize}, an image of another size is scaled
 * to it, each axis on its own (the aspect ratio is not kept): where it shrinks each output pixel is
 * the mean of the input area it covers (a picture of 2 x 2 blocks comes back exactly), where it
 * grows the bilinear interpolation of the nearest four. Without, such an image is refused.
 *
 * <p>{@link ImageVectorizer} applies it to a DataFrame column; it reads Spark's image struct (as
 * the {@code image} and {@code idx} sources give it) and encoded image files (PNG, JPEG, GIF or
 * BMP bytes, as the {@code binaryFile} source gives them), and says for each image that it cannot
 * read why, naming it.
 */
public final class ImagePixels implements Serializable {
  private static final long serialVersionUID = 1L;

  private final int height;
  private final int width;
  private final int channels;
  private final boolean resize;
  private final String resizeHint;

  /**
   * @param channels   1 or 3
   * @param resizeHint how a caller asks for {@code resize}, for the message refusing an image of
   *                   another size without it (such as {@code "give --resize"})
   * @throws IllegalArgumentException for a size under 1 or another number of channels
   */
  public ImagePixels(int height, int width, int channels, boolean resize, String resizeHint) {
    if (height < 1 || width < 1) {
      throw new IllegalArgumentException("an image input needs a height and width of at least 1, not " + height + "x"
          + width);
    }
    if (channels != 1 && channels != 3) {
      throw new IllegalArgumentException("images are read as 1 channel (gray) or 3 (blue, green, red), not " + channels);
    }
    this.height = height;
    this.width = width;
    this.channels = channels;
    this.resize = resize;
    this.resizeHint = resizeHint;
  }

  /** Values one image becomes: {@code height * width * channels}. */
  public int size() {
    return height * width * channels;
  }

  /** One image's values, or why it cannot be read (then {@code pixels} is null). */
  public record Decoded(double[] pixels, String problem) {
  }

  /**
   * One Spark image struct (gray, BGR or BGRA bytes; {@code origin} names it in messages).
   */
  public Decoded fromStruct(Row img) {
    if (img == null) {
      return new Decoded(null, "an image is null");
    }
    String origin = img.getAs("origin");
    int ih = img.<Integer>getAs("height");
    int iw = img.<Integer>getAs("width");
    int ch = img.<Integer>getAs("nChannels");
    if (ih < 0 || iw < 0 || ch < 0) {
      return new Decoded(null, "image " + origin + " could not be decoded (not an image Spark's image source reads:"
          + " PNG, JPEG, BMP or GIF, or a truncated one)");
    }
    if (ch != 1 && ch != 3 && ch != 4) {
      return new Decoded(null, "image " + origin + " has " + ch + " channels; expected 1 (gray), 3 or 4 (color)");
    }
    String problem = sizeProblem("image " + origin, iw, ih);
    if (problem != null) {
      return new Decoded(null, problem);
    }
    byte[] data = img.getAs("data");
    double[] src = new double[ih * iw * channels];
    for (int i = 0; i < ih * iw; i++) {
      if (ch == 1) {
        putGray(src, i, data[i] & 0xff);
      } else {
        putColour(src, i, data[i * ch] & 0xff, data[i * ch + 1] & 0xff, data[i * ch + 2] & 0xff);
      }
    }
    return new Decoded(fit(src, ih, iw), null);
  }

  /** One encoded image file's bytes ({@code what} names it in messages). */
  public Decoded fromFile(byte[] bytes, String what) {
    if (bytes == null) {
      return new Decoded(null, what + " is null");
    }
    BufferedImage img;
    try {
      img = ImageIO.read(new ByteArrayInputStream(bytes));
    } catch (IOException | RuntimeException e) {
      img = null;
    }
    if (img == null) {
      return new Decoded(null, what + " could not be decoded (" + bytes.length + " bytes, not a PNG, JPEG, GIF or BMP"
          + " file ImageIO reads, or a truncated one)");
    }
    int ih = img.getHeight();
    int iw = img.getWidth();
    String problem = sizeProblem(what, iw, ih);
    if (problem != null) {
      return new Decoded(null, problem);
    }
    double[] src = new double[ih * iw * channels];
    Raster raster = img.getRaster();
    if (img.getColorModel().getColorSpace().getType() == ColorSpace.TYPE_GRAY && raster.getNumBands() == 1) {
      // Gray samples as they are (Spark's image source does the same), more than 8 bits scaled to 8.
      int shift = Math.max(0, raster.getSampleModel().getSampleSize(0) - 8);
      for (int y = 0; y < ih; y++) {
        for (int x = 0; x < iw; x++) {
          putGray(src, y * iw + x, (raster.getSample(x, y, 0) >> shift) & 0xff);
        }
      }
    } else {
      for (int y = 0; y < ih; y++) {
        for (int x = 0; x < iw; x++) {
          int rgb = img.getRGB(x, y);
          putColour(src, y * iw + x, rgb & 0xff, (rgb >> 8) & 0xff, (rgb >> 16) & 0xff);
        }
      }
    }
    return new Decoded(fit(src, ih, iw), null);
  }

  /** Why image {@code what} of {@code iw x ih} pixels cannot be read, or null when it can. */
  String sizeProblem(String what, int iw, int ih) {
    if (resize || (ih == height && iw == width)) {
      return null;
    }
    return what + " is " + iw + "x" + ih + " pixels, but the model reads " + width + "x" + height
        + "; resize the images first, or " + resizeHint;
  }

  private void putGray(double[] out, int i, int v) {
    for (int k = 0; k < channels; k++) {
      out[i * channels + k] = v / 255.0;
    }
  }

  private void putColour(double[] out, int i, int b, int g, int r) {
    if (channels == 1) {
      out[i] = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0;
    } else {
      out[i * 3] = b / 255.0;
      out[i * 3 + 1] = g / 255.0;
      out[i * 3 + 2] = r / 255.0;
    }
  }

  /** {@code src}, an image of {@code ih x iw} pixels of this input's channels, at this input's size. */
  double[] fit(double[] src, int ih, int iw) {
    if (ih == height && iw == width) {
      return src;
    }
    Axis ys = Axis.of(ih, height);
    Axis xs = Axis.of(iw, width);
    int c = channels;
    // Rows first (height x iw), then columns.
    double[] rows = new double[height * iw * c];
    for (int oy = 0; oy < height; oy++) {
      for (int t = 0; t < ys.weights[oy].length; t++) {
        double wt = ys.weights[oy][t];
        int from = (ys.first[oy] + t) * iw * c;
        for (int j = 0; j < iw * c; j++) {
          rows[oy * iw * c + j] += wt * src[from + j];
        }
      }
    }
    double[] out = new double[height * width * c];
    for (int oy = 0; oy < height; oy++) {
      for (int ox = 0; ox < width; ox++) {
        for (int t = 0; t < xs.weights[ox].length; t++) {
          double wt = xs.weights[ox][t];
          int from = (oy * iw + xs.first[ox] + t) * c;
          for (int k = 0; k < c; k++) {
            out[(oy * width + ox) * c + k] += wt * rows[from + k];
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
