package dev.convspark.tensor.spec;

import dev.convspark.tensor.Padding;

/**
 * One layer of a {@link ModelSpec}, as declared. Each record prints back to its token in the text
 * form with {@link #token()}.
 */
public sealed interface LayerSpec {

  /** The layer's token in the text form of a spec. */
  String token();

  /** 2-D convolution over NHWC input, with a bias per output channel. */
  record Conv(int kernelHeight, int kernelWidth, int filters, int stride, Padding padding) implements LayerSpec {
    @Override
    public String token() {
      return "conv" + kernelHeight + "x" + kernelWidth + "x" + filters + options(stride, padding, 1, Padding.SAME);
    }
  }

  /** Max pooling over a square window. */
  record MaxPool(int window, int stride, Padding padding) implements LayerSpec {
    @Override
    public String token() {
      return "pool" + window + options(stride, padding, window, Padding.SAME);
    }
  }

  /** Fully connected layer; {@code inputs} is 0 when inferred from the previous layer. */
  record Dense(int inputs, int units) implements LayerSpec {
    @Override
    public String token() {
      return "dense" + (inputs > 0 ? inputs + "x" : "") + units;
    }
  }

  /** Rectified linear unit. */
  record Relu() implements LayerSpec {
    @Override
    public String token() {
      return "relu";
    }
  }

  /** Inverted dropout; the keep probability is a training setting, not part of the model. */
  record Dropout() implements LayerSpec {
    @Override
    public String token() {
      return "dropout";
    }
  }

  /** Reshapes an image to a vector (inserted automatically before a dense layer). */
  record Flatten() implements LayerSpec {
    @Override
    public String token() {
      return "flatten";
    }
  }

  private static String options(int stride, Padding padding, int defaultStride, Padding defaultPadding) {
    return (stride != defaultStride ? ":s" + stride : "") + (padding != defaultPadding ? ":" + padding.name().toLowerCase() : "");
  }
}
