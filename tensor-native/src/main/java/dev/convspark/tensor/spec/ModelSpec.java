package dev.convspark.tensor.spec;

import dev.convspark.tensor.Padding;
import dev.convspark.tensor.Shape;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A declarative description of a layer stack: the input shape, the layers, and how parameters are
 * initialised. Shapes are inferred layer by layer when the spec is built, so an impossible stack
 * fails here, naming the layer, and never at training time.
 *
 * <h2>Text form</h2>
 * Tokens separated by {@code -}:
 * <ul>
 *   <li>{@code inHxWxC} or {@code inN}: the input shape of one sample (first, optional; default
 *       {@code in28x28x1});</li>
 *   <li>{@code convKHxKWxF}: convolution with F filters, stride 1, SAME padding; options
 *       {@code :sS} (stride) and {@code :valid}, e.g. {@code conv3x3x16:s2:valid};</li>
 *   <li>{@code poolW}: max pooling, window W, stride W, SAME padding; options as for conv;</li>
 *   <li>{@code denseN} (N units, inputs inferred) or {@code denseIxN} (inputs checked to be I);
 *       an image input is flattened first;</li>
 *   <li>{@code relu}, {@code dropout}, {@code flatten}.</li>
 * </ul>
 * Built-in names: {@code softmax-regression} ({@code in784-dense10}, all parameters zero, as in
 * the tutorial) and {@code deep-mnist}
 * ({@code in28x28x1-conv5x5x32-relu-pool2-conv5x5x64-relu-pool2-dense1024-relu-dropout-dense10},
 * weights truncated normal with standard deviation 0.1, biases 0.1). A text spec is initialised
 * like {@code deep-mnist}.
 */
public final class ModelSpec {

  /** How weights are initialised. */
  public enum WeightInit {
    /** Normal with standard deviation 0.1, redrawn when beyond two standard deviations. */
    TRUNCATED_NORMAL,
    /** All zero. */
    ZEROS,
    /**
     * Normal with standard deviation {@code sqrt(2 / fanIn)}, redrawn when beyond two standard
     * deviations, where {@code fanIn} is the inputs of one output ({@code kh * kw * c} for a
     * convolution): He et al., 2015, for layers followed by a ReLU. It keeps each layer's output
     * about the size of its input; deep-mnist's 0.1 is four times that for its first dense layer
     * (3,136 inputs) and a third of it for its first convolution (25), which a short training
     * spends many of its steps undoing.
     */
    HE_NORMAL
  }

  /** The tutorial's CNN. */
  public static final String DEEP_MNIST = "deep-mnist";
  /** The tutorial's softmax regression. */
  public static final String SOFTMAX_REGRESSION = "softmax-regression";

  private static final Map<String, String> BUILT_IN = Map.of(
      DEEP_MNIST, "in28x28x1-conv5x5x32-relu-pool2-conv5x5x64-relu-pool2-dense1024-relu-dropout-dense10",
      SOFTMAX_REGRESSION, "in784-dense10");

  private static final Pattern IN = Pattern.compile("in(\\d+)(?:x(\\d+)x(\\d+))?");
  private static final Pattern CONV = Pattern.compile("conv(\\d+)x(\\d+)x(\\d+)((?::[a-z0-9]+)*)");
  private static final Pattern POOL = Pattern.compile("pool(\\d+)((?::[a-z0-9]+)*)");
  private static final Pattern DENSE = Pattern.compile("dense(?:(\\d+)x)?(\\d+)");

  private final String name;
  private final Shape input;
  private final List<LayerSpec> layers;
  private final List<Shape> shapes;
  private final WeightInit weightInit;
  private final float biasInit;

  private ModelSpec(String name, Shape input, List<LayerSpec> layers, WeightInit weightInit, float biasInit) {
    this.name = name;
    this.input = input;
    this.weightInit = weightInit;
    this.biasInit = biasInit;
    List<LayerSpec> withFlatten = new ArrayList<>();
    List<Shape> out = new ArrayList<>();
    Shape s = input;
    int index = 0;
    for (LayerSpec l : layers) {
      index++;
      if (l instanceof LayerSpec.Dense && s.isImage()) {
        withFlatten.add(new LayerSpec.Flatten());
        s = Shape.vector(s.size());
        out.add(s);
      }
      s = infer(l, s, index);
      withFlatten.add(l);
      out.add(s);
    }
    if (withFlatten.isEmpty()) {
      throw new IllegalArgumentException("model spec '" + name + "' has no layers");
    }
    this.layers = List.copyOf(withFlatten);
    this.shapes = List.copyOf(out);
  }

  /**
   * A spec by built-in name ({@code deep-mnist}, {@code softmax-regression}) or in the text form.
   *
   * @throws IllegalArgumentException naming the token or layer that is wrong
   */
  public static ModelSpec parse(String spec) {
    String s = spec.trim().toLowerCase(Locale.ROOT);
    if (BUILT_IN.containsKey(s)) {
      boolean softmax = s.equals(SOFTMAX_REGRESSION);
      return parseText(s, BUILT_IN.get(s), softmax ? WeightInit.ZEROS : WeightInit.TRUNCATED_NORMAL, softmax ? 0f : 0.1f);
    }
    return parseText(s, s, WeightInit.TRUNCATED_NORMAL, 0.1f);
  }

  /** A spec built in code; see {@link #parse} for the meaning of each layer. */
  public static ModelSpec of(String name, Shape input, List<LayerSpec> layers, WeightInit weightInit, float biasInit) {
    return new ModelSpec(name, input, layers, weightInit, biasInit);
  }

  private static ModelSpec parseText(String name, String text, WeightInit init, float bias) {
    String[] tokens = text.split("-");
    Shape input = Shape.image(28, 28, 1);
    List<LayerSpec> layers = new ArrayList<>();
    for (int i = 0; i < tokens.length; i++) {
      String t = tokens[i];
      Matcher m;
      if (i == 0 && (m = IN.matcher(t)).matches()) {
        input = m.group(2) == null ? Shape.vector(positive(m.group(1), t))
            : Shape.image(positive(m.group(1), t), positive(m.group(2), t), positive(m.group(3), t));
      } else if ((m = CONV.matcher(t)).matches()) {
        int[] sp = options(m.group(4), 1, t);
        layers.add(new LayerSpec.Conv(positive(m.group(1), t), positive(m.group(2), t), positive(m.group(3), t),
            sp[0], sp[1] == 1 ? Padding.VALID : Padding.SAME));
      } else if ((m = POOL.matcher(t)).matches()) {
        int w = positive(m.group(1), t);
        int[] sp = options(m.group(2), w, t);
        layers.add(new LayerSpec.MaxPool(w, sp[0], sp[1] == 1 ? Padding.VALID : Padding.SAME));
      } else if ((m = DENSE.matcher(t)).matches()) {
        layers.add(new LayerSpec.Dense(m.group(1) == null ? 0 : positive(m.group(1), t), positive(m.group(2), t)));
      } else if (t.equals("relu")) {
        layers.add(new LayerSpec.Relu());
      } else if (t.equals("dropout")) {
        layers.add(new LayerSpec.Dropout());
      } else if (t.equals("flatten")) {
        layers.add(new LayerSpec.Flatten());
      } else {
        throw new IllegalArgumentException("model spec '" + text + "': token " + (i + 1) + " '" + t
            + "' is not a layer (expected inHxWxC, convKxKxF, poolW, denseN, relu, dropout or flatten,"
            + " or a built-in name: " + String.join(", ", BUILT_IN.keySet()) + ")");
      }
    }
    return new ModelSpec(name, input, layers, init, bias);
  }

  private static int positive(String digits, String token) {
    try {
      int v = Integer.parseInt(digits);
      if (v < 1) {
        throw new IllegalArgumentException("model spec token '" + token + "': sizes must be >= 1 but found " + v);
      }
      return v;
    } catch (NumberFormatException e) {
      throw new IllegalArgumentException("model spec token '" + token + "': size " + digits + " is too large", e);
    }
  }

  /** Parses {@code :sN} and {@code :valid}/{@code :same}; returns {stride, valid ? 1 : 0}. */
  private static int[] options(String opts, int defaultStride, String token) {
    int stride = defaultStride;
    int valid = 0;
    for (String o : opts.split(":")) {
      if (o.isEmpty()) {
        continue;
      }
      if (o.equals("valid")) {
        valid = 1;
      } else if (o.equals("same")) {
        valid = 0;
      } else if (o.matches("s\\d+")) {
        stride = positive(o.substring(1), token);
      } else {
        throw new IllegalArgumentException("model spec token '" + token + "': unknown option ':" + o
            + "' (expected :sN for the stride, :valid or :same)");
      }
    }
    return new int[] {stride, valid};
  }

  private static Shape infer(LayerSpec l, Shape in, int index) {
    String where = "layer " + index + " (" + l.token() + ")";
    if (l instanceof LayerSpec.Conv c) {
      requireImage(in, where);
      int oh = c.padding().outputSize(in.height(), c.kernelHeight(), c.stride());
      int ow = c.padding().outputSize(in.width(), c.kernelWidth(), c.stride());
      if (oh < 1 || ow < 1) {
        throw new IllegalArgumentException(where + ": a " + c.kernelHeight() + "x" + c.kernelWidth()
            + " kernel does not fit input " + in + " with " + c.padding() + " padding");
      }
      return Shape.image(oh, ow, c.filters());
    } else if (l instanceof LayerSpec.MaxPool p) {
      requireImage(in, where);
      int oh = p.padding().outputSize(in.height(), p.window(), p.stride());
      int ow = p.padding().outputSize(in.width(), p.window(), p.stride());
      if (oh < 1 || ow < 1) {
        throw new IllegalArgumentException(where + ": pooling would shrink input " + in + " below 1 pixel");
      }
      return Shape.image(oh, ow, in.channels());
    } else if (l instanceof LayerSpec.Dense d) {
      if (d.inputs() > 0 && d.inputs() != in.size()) {
        throw new IllegalArgumentException(where + ": declared " + d.inputs() + " inputs but is fed " + in.size()
            + " (shape " + in + ")");
      }
      return Shape.vector(d.units());
    } else if (l instanceof LayerSpec.Flatten) {
      return Shape.vector(in.size());
    }
    return in;
  }

  private static void requireImage(Shape in, String where) {
    if (!in.isImage()) {
      throw new IllegalArgumentException(where + ": needs an image input HxWxC but is fed a vector of " + in.size());
    }
  }

  /** The built-in name, or the text the spec was parsed from. */
  public String name() {
    return name;
  }

  /** The canonical text form, which {@link #parse} reads back to an equal spec (initialisation aside). */
  public String text() {
    StringBuilder b = new StringBuilder("in").append(input);
    for (LayerSpec l : layers) {
      b.append('-').append(l.token());
    }
    return b.toString();
  }

  /**
   * The string that {@link #parse} turns back into this spec: the built-in name when it is one,
   * else the canonical text form. Model files store this.
   */
  public String specString() {
    return BUILT_IN.containsKey(name) ? name : text();
  }

  /** The shape of one input sample. */
  public Shape inputShape() {
    return input;
  }

  /** The layers, with the flatten steps inferred before dense layers. */
  public List<LayerSpec> layers() {
    return layers;
  }

  /** The output shape of each layer, in order. */
  public List<Shape> outputShapes() {
    return shapes;
  }

  /**
   * The number of parameters a network of this spec has (weights and biases), computed from the
   * shapes without building anything.
   */
  public long paramCount() {
    long count = 0;
    Shape in = input;
    for (int i = 0; i < layers.size(); i++) {
      LayerSpec l = layers.get(i);
      if (l instanceof LayerSpec.Conv c) {
        count += (long) c.kernelHeight() * c.kernelWidth() * in.channels() * c.filters() + c.filters();
      } else if (l instanceof LayerSpec.Dense d) {
        count += (long) in.size() * d.units() + d.units();
      }
      in = shapes.get(i);
    }
    return count;
  }

  /**
   * The layers' names in order, as the engine names them: {@code conv1}, {@code pool1},
   * {@code dense1}, ... numbered by kind, and {@code relu}, {@code dropout} and {@code flatten}
   * numbered together (deep-mnist: conv1, relu1, pool1, conv2, relu2, pool2, flatten3, dense1,
   * relu4, dropout5, dense2).
   */
  public List<String> layerNames() {
    List<String> names = new ArrayList<>();
    int conv = 0;
    int pool = 0;
    int dense = 0;
    int other = 0;
    for (LayerSpec l : layers) {
      if (l instanceof LayerSpec.Conv) {
        names.add("conv" + (++conv));
      } else if (l instanceof LayerSpec.MaxPool) {
        names.add("pool" + (++pool));
      } else if (l instanceof LayerSpec.Dense) {
        names.add("dense" + (++dense));
      } else if (l instanceof LayerSpec.Relu) {
        names.add("relu" + (++other));
      } else if (l instanceof LayerSpec.Dropout) {
        names.add("dropout" + (++other));
      } else {
        names.add("flatten" + (++other));
      }
    }
    return names;
  }

  /** The index in {@link #layers()} of the last dense layer (the classifier's head), or -1 without one. */
  public int lastDenseLayer() {
    int last = -1;
    for (int i = 0; i < layers.size(); i++) {
      last = layers.get(i) instanceof LayerSpec.Dense ? i : last;
    }
    return last;
  }

  /**
   * The network of this one's first {@code count} layers (its text form as its name): its output
   * is that layer's, and its parameters are the first {@link #paramCount()} of this one's, since
   * parameters lie layer after layer.
   *
   * @throws IllegalArgumentException when {@code count} is not in {@code [1, layers]}
   */
  public ModelSpec upTo(int count) {
    if (count < 1 || count > layers.size()) {
      throw new IllegalArgumentException("the first " + count + " layers of " + name + ": the count must be in [1, "
          + layers.size() + "]");
    }
    List<LayerSpec> first = layers.subList(0, count);
    StringBuilder text = new StringBuilder("in").append(input);
    for (LayerSpec l : first) {
      text.append('-').append(l.token());
    }
    return new ModelSpec(text.toString(), input, first, weightInit, biasInit);
  }

  /** The number of classes: the size of the last layer's output. */
  public int numClasses() {
    return shapes.get(shapes.size() - 1).size();
  }

  /** How weights are initialised. */
  public WeightInit weightInit() {
    return weightInit;
  }

  /** The initial value of every bias. */
  public float biasInit() {
    return biasInit;
  }

  @Override
  public String toString() {
    return name.equals(text()) ? name : name + " (" + text() + ")";
  }
}
