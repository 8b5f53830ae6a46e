package dev.convspark.ml.training;

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
 * ones deleted. With validation the history also holds the evaluations so far, and when the model
 * keeps the best weights and they are older than the checkpoint, {@code step-N.best.cspk} holds
 * them (written before the model file). The data sampling and dropout of step {@code s} derive from the seed and
 * {@code s} alone, so the step is all the random state a resumed run needs.
 */
public final class Checkpoints implements Serializable {
  private static final long serialVersionUID = 1L;

  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(Checkpoints.class);
  private static final Pattern NAME = Pattern.compile("step-(\\d{1,10})\\.cspk");
  private static final byte[] HISTORY_MAGIC = "CSPKHIST".getBytes(StandardCharsets.US_ASCII);
  /** A history that also holds validation evaluations. */
  private static final byte[] VALIDATED_MAGIC = "CSPKHIS2".getBytes(StandardCharsets.US_ASCII);
  /** Checkpoints kept: the newest and the one before it. */
  private static final int KEEP = 2;

  private final String dir;
  private final SerializableConfiguration conf;

  /**
   * One loaded checkpoint; {@code validation} is null when it was written without validation,
   * {@code best} null unless it holds best weights older than the checkpoint.
   */
  public record Checkpoint(int step, ModelState state, double[] loss, double[] accuracy, Validation.History validation,
                    float[] best) {
  }

  /** The checkpoints under {@code dir} (any Hadoop file system {@code conf} reaches). */
  public Checkpoints(String dir, Configuration conf) {
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

  private Path best(int step) {
    return new Path(dir, "step-" + step + ".best.cspk");
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
  public int latest() throws IOException {
    List<Integer> s = steps();
    return s.isEmpty() ? 0 : s.get(s.size() - 1);
  }

  /**
   * Loads checkpoint {@code step} and checks it belongs to this training run.
   *
   * @throws IllegalArgumentException when it holds another model or optimizer, naming both
   * @throws IOException when a file is missing, truncated or corrupt, naming it
   */
  public Checkpoint load(int step, ModelSpec spec, String optimizer) throws IOException {
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
    History hist;
    try (InputStream in = open(fs, h, 28L + step * 36L)) {
      hist = readHistory(in.readAllBytes(), step, h.toString());
    }
    float[] best = null;
    if (hist.validation() != null && fs.exists(best(step))) {
      try (InputStream in = open(fs, best(step), max)) {
        best = ModelFile.read(in, best(step).toString()).params();
      }
      if (best.length != spec.paramCount()) {
        throw new IOException(best(step) + ": holds " + best.length + " weights, the model has " + spec.paramCount());
      }
    }
    return new Checkpoint(step, state, hist.loss(), hist.accuracy(), hist.validation(), best);
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
    save(step, state, loss, accuracy, null, null);
  }

  /**
   * As above, with the validation history so far ({@code validation}, or null) and the best
   * weights when the model keeps them and they are not the checkpoint's own ({@code best}, or null).
   */
  void save(int step, ModelState state, double[] loss, double[] accuracy, Validation.History validation, float[] best)
      throws IOException {
    checkFinite(state, step);
    FileSystem fs = fs();
    fs.mkdirs(new Path(dir));
    ByteArrayOutputStream b = new ByteArrayOutputStream();
    ModelFile.write(state, b);
    writeAtomically(fs, history(step), historyBytes(step, loss, accuracy, validation));
    if (best != null) {
      ByteArrayOutputStream kept = new ByteArrayOutputStream();
      ModelFile.write(new ModelState(state.spec(), best, null), kept);
      writeAtomically(fs, best(step), kept.toByteArray());
    }
    writeAtomically(fs, model(step), b.toByteArray());
    List<Integer> all = steps();
    for (int i = 0; i < all.size() - KEEP; i++) {
      fs.delete(model(all.get(i)), false);
      fs.delete(history(all.get(i)), false);
      fs.delete(best(all.get(i)), false);
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

  /** A checkpoint's history: per step, and the validation evaluations (null when not validated). */
  record History(double[] loss, double[] accuracy, Validation.History validation) {
  }

  static byte[] historyBytes(int step, double[] loss, double[] accuracy, Validation.History validation)
      throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(24 + step * 16);
    DataOutputStream d = new DataOutputStream(bytes);
    d.write(validation == null ? HISTORY_MAGIC : VALIDATED_MAGIC);
    d.writeInt(step);
    for (int i = 0; i < step; i++) {
      d.writeDouble(loss[i]);
    }
    for (int i = 0; i < step; i++) {
      d.writeDouble(accuracy[i]);
    }
    if (validation != null) {
      d.writeInt(validation.steps().length);
      for (int i = 0; i < validation.steps().length; i++) {
        d.writeInt(validation.steps()[i]);
        d.writeDouble(validation.loss()[i]);
        d.writeDouble(validation.accuracy()[i]);
      }
    }
    d.flush();
    CRC32 crc = new CRC32();
    crc.update(bytes.toByteArray());
    d.writeLong(crc.getValue());
    d.flush();
    return bytes.toByteArray();
  }

  static History readHistory(byte[] all, int step, String source) throws IOException {
    boolean validated = all.length >= VALIDATED_MAGIC.length
        && java.util.Arrays.equals(all, 0, VALIDATED_MAGIC.length, VALIDATED_MAGIC, 0, VALIDATED_MAGIC.length);
    long plain = HISTORY_MAGIC.length + 4 + step * 16L + 8;
    int evaluations = validated && all.length >= plain + 4 ? ByteBuffer.wrap(all).getInt((int) plain - 8) : 0;
    long expected = validated ? plain + 4 + evaluations * 20L : plain;
    if (all.length != expected || evaluations < 0 || evaluations > step) {
      throw new IOException(source + ": checkpoint history of step " + step + " should be " + expected
          + " bytes but is " + all.length);
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
      if (!(java.util.Arrays.equals(magic, HISTORY_MAGIC) || validated) || n != step) {
        throw new IOException(source + ": not the history of checkpoint step " + step);
      }
      double[][] h = new double[2][n];
      for (int k = 0; k < 2; k++) {
        for (int i = 0; i < n; i++) {
          h[k][i] = b.getDouble();
        }
      }
      Validation.History v = null;
      if (validated) {
        b.getInt();
        int[] at = new int[evaluations];
        double[] vl = new double[evaluations];
        double[] va = new double[evaluations];
        for (int i = 0; i < evaluations; i++) {
          at[i] = b.getInt();
          vl[i] = b.getDouble();
          va[i] = b.getDouble();
        }
        v = new Validation.History(at, vl, va, 0, false);
      }
      return new History(h[0], h[1], v);
    } catch (BufferUnderflowException e) {
      throw new IOException(source + ": checkpoint history is truncated", e);
    }
  }
}
