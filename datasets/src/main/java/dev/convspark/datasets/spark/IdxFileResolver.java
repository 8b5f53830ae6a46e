package dev.convspark.datasets.spark;

import dev.convspark.datasets.idx.IdxFormatException;
import dev.convspark.datasets.idx.IdxHeader;
import dev.convspark.datasets.idx.IdxReader;
import dev.convspark.datasets.idx.IdxType;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.util.SerializableConfiguration;

/**
 * Turns the {@code path} option into validated data files, each paired with its labels: expands
 * a directory or glob, sets aside labels files whose images file is also there, pairs by the MNIST
 * naming convention or the {@code labelsPath} option, and checks every file completely (a
 * compressed one is decompressed to its end) before any row is read.
 */
final class IdxFileResolver {

  private static final Pattern IMAGES = Pattern.compile("(.*)-images-idx(\\d)-ubyte(\\.gz)?");
  private static final Pattern LABELS = Pattern.compile("(.*)-labels-idx1-ubyte(\\.gz)?");

  private IdxFileResolver() {
  }

  static List<IdxFile> resolve(IdxOptions options, Configuration hadoopConf) {
    try {
      return resolveOrThrow(options, hadoopConf);
    } catch (IOException e) {
      throw new UncheckedIOException(e.getMessage(), e);
    }
  }

  private static List<IdxFile> resolveOrThrow(IdxOptions options, Configuration hadoopConf) throws IOException {
    SerializableConfiguration conf = new SerializableConfiguration(hadoopConf);
    Path pattern = new Path(options.path);
    FileSystem fs = pattern.getFileSystem(hadoopConf);
    FileStatus[] matched = fs.globStatus(pattern);
    if (matched == null || matched.length == 0) {
      throw new IOException("idx source: path " + options.path + " matches no file");
    }
    TreeMap<String, Path> files = new TreeMap<>();
    for (FileStatus st : matched) {
      if (st.isDirectory()) {
        for (FileStatus child : fs.listStatus(st.getPath())) {
          String name = child.getPath().getName();
          if (child.isFile() && !name.startsWith(".") && !name.startsWith("_")) {
            files.put(child.getPath().toString(), child.getPath());
          }
        }
      } else {
        files.put(st.getPath().toString(), st.getPath());
      }
    }
    if (files.isEmpty()) {
      throw new IOException("idx source: path " + options.path + " holds no file");
    }
    List<Path> data = new ArrayList<>();
    for (Path p : files.values()) {
      Matcher m = LABELS.matcher(p.getName());
      boolean labelsOfAnother = m.matches() && files.values().stream().anyMatch(q -> {
        Matcher im = IMAGES.matcher(q.getName());
        return im.matches() && im.group(1).equals(m.group(1)) && q.getParent().equals(p.getParent());
      });
      if (!labelsOfAnother) {
        data.add(p);
      }
    }
    if (options.labelsPath != null && data.size() != 1) {
      throw new IOException("idx source: option labelsPath needs exactly one data file, but " + options.path
          + " gives " + data.size() + ": " + data);
    }
    List<IdxFile> out = new ArrayList<>();
    for (Path p : data) {
      HadoopIdxSource src = new HadoopIdxSource(p.toString(), conf);
      IdxHeader h = IdxReader.validate(src);
      boolean gz = IdxReader.isGzip(src);
      Path labels = options.labelsPath != null ? new Path(options.labelsPath) : conventionalLabels(fs, p);
      HadoopIdxSource labelSrc = null;
      if (labels != null) {
        labelSrc = new HadoopIdxSource(labels.toString(), conf);
        if (!labels.getFileSystem(hadoopConf).exists(labels)) {
          throw new IOException("idx source: labels file " + labels + " (option labelsPath) does not exist");
        }
        IdxHeader lh = IdxReader.validate(labelSrc);
        if (lh.dims().length != 1 || lh.type() == IdxType.FLOAT || lh.type() == IdxType.DOUBLE) {
          throw new IdxFormatException(labels.toString(), "a labels file must hold one integer per record, but its header is " + lh);
        }
        if (lh.count() != h.count()) {
          throw new IdxFormatException(labels.toString(), "has " + lh.count() + " labels but " + p + " has "
              + h.count() + " records");
        }
      }
      if (!out.isEmpty()) {
        IdxHeader first = out.get(0).header();
        if (first.type() != h.type() || !Arrays.equals(first.recordShape(), h.recordShape())) {
          throw new IdxFormatException(p.toString(), "records are " + h.type() + " " + Arrays.toString(h.recordShape())
              + " but " + out.get(0).data().name() + " has " + first.type() + " " + Arrays.toString(first.recordShape())
              + "; one read needs files of one record type and shape");
        }
        if ((out.get(0).labels() == null) != (labelSrc == null)) {
          throw new IOException("idx source: some data files under " + options.path + " have labels and some do not ("
              + p + " " + (labelSrc == null ? "has none" : "has " + labels) + ")");
        }
      }
      out.add(new IdxFile(src, h, gz, labelSrc));
    }
    return out;
  }

  private static Path conventionalLabels(FileSystem fs, Path images) throws IOException {
    Matcher m = IMAGES.matcher(images.getName());
    if (!m.matches()) {
      return null;
    }
    for (String suffix : new String[] {"", ".gz"}) {
      Path p = new Path(images.getParent(), m.group(1) + "-labels-idx1-ubyte" + suffix);
      if (fs.exists(p)) {
        return p;
      }
    }
    return null;
  }
}
