package dev.convspark.ml;

import dev.convspark.tensor.io.ModelFile;
import dev.convspark.tensor.io.ModelState;
import dev.convspark.tensor.spec.ModelSpec;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.Serializable;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.CRC32;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.util.SerializableConfiguration;

/**
 * Training checkpoints in a directory of any Hadoop file system. Checkpoint {@code N} is two
 * files: {@code step-N.history} (the per-step loss and accuracy so far, with a checksum) and
 * {@code step-N.cspk} (a {@link ModelFile} holding the weights and the optimizer state, whose step
 * count is {@code N}). Each is written under a temporary name and renamed into place, the model
 * file last, so a checkpoint exists only once both are whole; the two newest are kept and older
 * ones deleted. The data sampling and dropout of step {@code s} derive from the seed and
 * {@code s} alone, so the step is all the random state a resumed run needs.
 */
final class Checkpoints implements Serializable {
  private static final long serialVersionUID = 1L;

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Checkpoints.class);
  private static final Pattern NAME = Pattern.compile("step-(\\d{1,10})\\.cspk");
  private static final byte[] HISTORY_MAGIC = "CSPKHIST".getBytes(StandardCharsets.US_ASCII);
  /** Checkpoints kept: the newest and the one before it. */
  private static final int KEEP = 2;

  private final String dir;
  private final SerializableConfiguration conf;

  /** One loaded checkpoint. */
  record Checkpoint(int step, ModelState state, double[] loss, double[] accuracy) {
  }

  Checkpoints(String dir, Configuration conf) {
    this.dir = dir;
    this.conf = new SerializableConfiguration(conf);
  }

  String dir() {
    return dir;
  }

  private FileSystem fs() throws IOException {
    return new Path(dir).getFileSystem(conf.value());
  }

  private Path model(int step) {
    return new Path(dir, "step-" + step + ".cspk");
  }

  private Path history(int step) {
    return new Path(dir, "step-" + step + ".history");
  }

  /** The steps of the complete checkpoints in the directory, oldest first (none when it does not exist). */
  List<Integer> steps() throws IOException {
    FileSystem fs = fs();
    List<Integer> steps = new ArrayList<>();
    Path d = new Path(dir);
    if (!fs.exists(d)) {
      return steps;
    }
    for (FileStatus f : fs.listStatus(d)) {
      Matcher m = NAME.matcher(f.getPath().getName());
      if (m.matches()) {
        long s = Long.parseLong(m.group(1));
        if (s > 0 && s <= Integer.MAX_VALUE) {
          steps.add((int) s);
        }
      }
    }
    steps.sort(null);
    return steps;
  }

  /** The newest checkpoint's step, or 0 when there is none. */
  int latest() throws IOException {
    List<Integer> s = steps();
    return s.isEmpty() ? 0 : s.get(s.size() - 1);
  }

  /**
   * Loads checkpoint {@code step} and checks it belongs to this training run.
   *
   * @throws IllegalArgumentException when it holds another model or optimizer, naming both
   * @throws IOException when a file is missing, truncated or corrupt, naming it
   */
  Checkpoint load(int step, ModelSpec spec, String optimizer) throws IOException {
    FileSystem fs = fs();
    Path m = model(step);
    ModelState state;
    long max = 16L + spec.paramCount() * 12L + (1 << 17);
    try (InputStream in = open(fs, m, max)) {
      state = ModelFile.read(in, m.toString());
    }
    if (!state.spec().specString().equals(spec.specString())) {
      throw new IllegalArgumentException("checkpointDir " + dir + " holds a checkpoint (step " + step + ") of model '"
          + state.spec().specString() + "', but this fit trains '" + spec.specString()
          + "'; use another checkpointDir or delete that one");
    }
    if (state.optimizer() == null || !state.optimizer().name().equalsIgnoreCase(optimizer)
        || state.optimizer().steps() != step) {
      throw new IllegalArgumentException("checkpointDir " + dir + ": checkpoint step " + step + " holds optimizer state "
          + (state.optimizer() == null ? "none" : "'" + state.optimizer().name() + "' after "
          + state.optimizer().steps() + " steps") + ", but this fit uses '" + optimizer + "'; use another checkpointDir");
    }
    Path h = history(step);
    double[][] hist;
    try (InputStream in = open(fs, h, 24L + step * 16L)) {
      hist = readHistory(in.readAllBytes(), step, h.toString());
    }
    return new Checkpoint(step, state, hist[0], hist[1]);
  }

  private static InputStream open(FileSystem fs, Path p, long maxBytes) throws IOException {
    if (!fs.exists(p)) {
      throw new IOException(p + ": checkpoint file is missing");
    }
    long len = fs.getFileStatus(p).getLen();
    if (len > maxBytes) {
      throw new IOException(p + ": " + len + " bytes is more than a checkpoint of this model can hold (at most "
          + maxBytes + ")");
    }
    return fs.open(p);
  }

  /** Refuses a model with a weight that is NaN or infinite, naming the step and a likely cause. */
  static void checkFinite(ModelState state, int step) {
    for (float p : state.params()) {
      if (!Float.isFinite(p)) {
        throw new ArithmeticException("a weight became " + p + " at step " + step
            + "; the model diverged and no checkpoint of it is written (try a lower learningRate, or check the"
            + " features for huge values)");
      }
    }
  }

  /**
   * Writes checkpoint {@code step} ({@code loss} and {@code accuracy} hold at least {@code step}
   * entries), then deletes all but the newest {@link #KEEP}.
   *
   * @throws ArithmeticException when a weight is not finite: a diverged model is never saved
   */
  void save(int step, ModelState state, double[] loss, double[] accuracy) throws IOException {
    checkFinite(state, step);
    FileSystem fs = fs();
    fs.mkdirs(new Path(dir));
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    ModelFile.write(state, b);
    writeAtomically(fs, history(step), historyBytes(step, loss, accuracy));
    writeAtomically(fs, model(step), b.toByteArray());
    List<Integer> all = steps();
    for (int i = 0; i < all.size() - KEEP; i++) {
      fs.delete(model(all.get(i)), false);
      fs.delete(history(all.get(i)), false);
    }
    LOG.info("checkpoint of step {} written to {}", step, dir);
  }

  private static void writeAtomically(FileSystem fs, Path target, byte[] bytes) throws IOException {
    Path tmp = new Path(target.getParent(), "." + target.getName() + "." + java.util.UUID.randomUUID() + ".tmp");
    try {
      try (OutputStream out = fs.create(tmp, false)) {
        out.write(bytes);
      }
      if (fs.exists(target)) {
        // Written by an earlier attempt of the same step: the same bytes, since runs are deterministic.
        fs.delete(target, false);
      }
      if (!fs.rename(tmp, target)) {
        throw new IOException("could not rename " + tmp + " to " + target);
      }
    } finally {
      fs.delete(tmp, false);
    }
  }

  static byte[] historyBytes(int step, double[] loss, double[] accuracy) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(24 + step * 16);
    DataOutputStream d = new DataOutputStream(bytes);
    d.write(HISTORY_MAGIC);
    d.writeInt(step);
    for (int i = 0; i < step; i++) {
      d.writeDouble(loss[i]);
    }
    for (int i = 0; i < step; i++) {
      d.writeDouble(accuracy[i]);
    }
    d.flush();
    CRC32 crc = new CRC32();
    crc.update(bytes.toByteArray());
    d.writeLong(crc.getValue());
    d.flush();
    return bytes.toByteArray();
  }

  static double[][] readHistory(byte[] all, int step, String source) throws IOException {
    if (all.length != HISTORY_MAGIC.length + 4 + step * 16L + 8) {
      throw new IOException(source + ": checkpoint history of step " + step + " should be "
          + (HISTORY_MAGIC.length + 4 + step * 16L + 8) + " bytes but is " + all.length);
    }
    CRC32 crc = new CRC32();
    crc.update(all, 0, all.length - 8);
    ByteBuffer b = ByteBuffer.wrap(all);
    if (b.getLong(all.length - 8) != crc.getValue()) {
      throw new IOException(source + ": checkpoint history is corrupt (checksum mismatch)");
    }
    try {
      byte[] magic = new byte[HISTORY_MAGIC.length];
      b.get(magic);
      int n = b.getInt();
      if (!java.util.Arrays.equals(magic, HISTORY_MAGIC) || n != step) {
        throw new IOException(source + ": not the history of checkpoint step " + step);
      }
      double[][] h = new double[2][n];
      for (int k = 0; k < 2; k++) {
        for (int i = 0; i < n; i++) {
          h[k][i] = b.getDouble();
        }
      }
      return h;
    } catch (BufferUnderflowException e) {
      throw new IOException(source + ": checkpoint history is truncated", e);
    }
  }
}
