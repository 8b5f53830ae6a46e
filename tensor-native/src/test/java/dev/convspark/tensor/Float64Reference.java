package dev.convspark.tensor;

import dev.convspark.tensor.kernels.ConvGeometry;
import dev.convspark.tensor.layers.Conv2d;
import dev.convspark.tensor.layers.Dense;
import dev.convspark.tensor.layers.Dropout;
import dev.convspark.tensor.layers.Layer;
import dev.convspark.tensor.layers.MaxPool2d;
import dev.convspark.tensor.layers.Relu;

/**
 * The layers' forward maths in double precision, written directly from the definitions (direct
 * convolution, no im2col), for finite-difference checks of the engine's float32 backward passes.
 */
final class Float64Reference {

  private Float64Reference() {
  }

  /** Forward of one layer in double. {@code dropoutMask} is the engine's mask for dropout layers. */
  static double[] forward(Layer layer, double[] params, double[] x, int n, double[] dropoutMask) {
    int outSize = layer.outputShape().size();
    double[] y = new double[n * outSize];
    if (layer instanceof Conv2d conv) {
      ConvGeometry g = conv.geometry();
      int f = layer.outputShape().channels();
      int w0 = layer.paramOffset();
      int b0 = w0 + conv.weightCount();
      for (int s = 0; s < n; s++) {
        for (int oh = 0; oh < g.outHeight(); oh++) {
          for (int ow = 0; ow < g.outWidth(); ow++) {
            for (int o = 0; o < f; o++) {
              double sum = params[b0 + o];
              for (int kh = 0; kh < g.kernelHeight(); kh++) {
                for (int kw = 0; kw < g.kernelWidth(); kw++) {
                  int ih = oh * g.stride() - g.padTop() + kh;
                  int iw = ow * g.stride() - g.padLeft() + kw;
                  if (ih < 0 || ih >= g.height() || iw < 0 || iw >= g.width()) {
                    continue;
                  }
                  for (int c = 0; c < g.channels(); c++) {
                    double xv = x[s * g.inputSize() + (ih * g.width() + iw) * g.channels() + c];
                    double wv = params[w0 + ((kh * g.kernelWidth() + kw) * g.channels() + c) * f + o];
                    sum += xv * wv;
                  }
                }
              }
              y[((s * g.outHeight() + oh) * g.outWidth() + ow) * f + o] = sum;
            }
          }
        }
      }
    } else if (layer instanceof MaxPool2d) {
      Shape in = layer.inputShape();
      Shape out = layer.outputShape();
      int window = poolWindow(in.height(), out.height());
      // Geometry reconstructed by the caller's test via poolGeometry.
      throw new UnsupportedOperationException("use maxPool(geometry, ...) for pooling, window " + window);
    } else if (layer instanceof Dense) {
      int in = layer.inputShape().size();
      int w0 = layer.paramOffset();
      int b0 = w0 + in * outSize;
      for (int s = 0; s < n; s++) {
        for (int u = 0; u < outSize; u++) {
          double sum = params[b0 + u];
          for (int i = 0; i < in; i++) {
            sum += x[s * in + i] * params[w0 + i * outSize + u];
          }
          y[s * outSize + u] = sum;
        }
      }
    } else if (layer instanceof Relu) {
      for (int i = 0; i < y.length; i++) {
        y[i] = Math.max(x[i], 0);
      }
    } else if (layer instanceof Dropout) {
      for (int i = 0; i < y.length; i++) {
        y[i] = dropoutMask == null ? x[i] : x[i] * dropoutMask[i];
      }
    } else {
      System.arraycopy(x, 0, y, 0, y.length);
    }
    return y;
  }

  private static int poolWindow(int in, int out) {
    return in / out;
  }

  /** Max pooling in double: padding never wins. */
  static double[] maxPool(ConvGeometry g, double[] x, int n) {
    double[] y = new double[n * g.outputPixels() * g.channels()];
    for (int s = 0; s < n; s++) {
      for (int oh = 0; oh < g.outHeight(); oh++) {
        for (int ow = 0; ow < g.outWidth(); ow++) {
          for (int c = 0; c < g.channels(); c++) {
            double best = Double.NEGATIVE_INFINITY;
            for (int kh = 0; kh < g.kernelHeight(); kh++) {
              for (int kw = 0; kw < g.kernelWidth(); kw++) {
                int ih = oh * g.stride() - g.padTop() + kh;
                int iw = ow * g.stride() - g.padLeft() + kw;
                if (ih >= 0 && ih < g.height() && iw >= 0 && iw < g.width()) {
                  best = Math.max(best, x[s * g.inputSize() + (ih * g.width() + iw) * g.channels() + c]);
                }
              }
            }
            y[((s * g.outHeight() + oh) * g.outWidth() + ow) * g.channels() + c] = best;
          }
        }
      }
    }
    return y;
  }

  /** Summed softmax cross-entropy in double. */
  static double crossEntropy(double[] logits, int[] labels, int n, int classes) {
    double total = 0;
    for (int s = 0; s < n; s++) {
      double max = Double.NEGATIVE_INFINITY;
      for (int c = 0; c < classes; c++) {
        max = Math.max(max, logits[s * classes + c]);
      }
      double sum = 0;
      for (int c = 0; c < classes; c++) {
        sum += Math.exp(logits[s * classes + c] - max);
      }
      total += Math.log(sum) + max - logits[s * classes + labels[s]];
    }
    return total;
  }

  static double[] toDouble(float[] a) {
    double[] d = new double[a.length];
    for (int i = 0; i < a.length; i++) {
      d[i] = a[i];
    }
    return d;
  }
}
