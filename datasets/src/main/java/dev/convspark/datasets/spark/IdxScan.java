package dev.convspark.datasets.spark;

import java.util.ArrayList;
import java.util.List;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.internal.SQLConf;
import org.apache.spark.sql.types.StructType;

/**
 * A batch scan of the resolved files: an uncompressed file splits into record ranges of at most
 * {@code recordsPerPartition} records and at most the bytes Spark's file sources would put in a
 * split ({@code spark.sql.files.maxPartitionBytes}, less for small inputs, so that they spread
 * over the cores); a compressed file is one split.
 */
final class IdxScan implements Scan, Batch {

  private final IdxTable table;

  IdxScan(IdxTable table) {
    this.table = table;
  }

  @Override
  public StructType readSchema() {
    return table.schema();
  }

  @Override
  public String description() {
    return "IdxScan " + table.options().path + " (" + table.files().size() + " file(s), "
        + table.layout().format.name().toLowerCase() + ")";
  }

  @Override
  public Batch toBatch() {
    return this;
  }

  @Override
  public InputPartition[] planInputPartitions() {
    long maxBytes = maxSplitBytes();
    long recordBytes = Math.max(1, table.layout().recordBytes);
    long perPartition = Math.max(1, Math.min(table.options().recordsPerPartition, maxBytes / recordBytes));
    List<InputPartition> parts = new ArrayList<>();
    for (IdxFile f : table.files()) {
      long count = f.header().count();
      if (f.compressed()) {
        parts.add(new IdxInputPartition(f, 0, count));
        continue;
      }
      // As few splits as the limit allows, of equal size: records all cost the same, so equal
      // splits make equal tasks (cutting at the limit would leave a small last split).
      long pieces = Math.max(1, (count + perPartition - 1) / perPartition);
      for (long i = 0; i < pieces; i++) {
        long first = count * i / pieces;
        parts.add(new IdxInputPartition(f, first, count * (i + 1) / pieces - first));
      }
    }
    return parts.toArray(new InputPartition[0]);
  }

  /**
   * Spark's own rule for file sources ({@code FilePartition.maxSplitBytes}): at most
   * {@code spark.sql.files.maxPartitionBytes}, but small inputs are spread over the default
   * parallelism (every file counted with {@code spark.sql.files.openCostInBytes} extra), never
   * below the open cost.
   */
  private long maxSplitBytes() {
    SQLConf conf = SQLConf.get();
    long openCost = conf.filesOpenCostInBytes();
    long total = 0;
    for (IdxFile f : table.files()) {
      total += f.header().count() * Math.max(1, table.layout().recordBytes) + openCost;
    }
    int minPartitions = conf.filesMinPartitionNum().isDefined() ? (Integer) conf.filesMinPartitionNum().get()
        : leafNodeDefaultParallelism();
    long perCore = total / Math.max(1, minPartitions);
    return Math.min(conf.filesMaxPartitionBytes(), Math.max(openCost, perCore));
  }

  private static int leafNodeDefaultParallelism() {
    org.apache.spark.sql.SparkSession spark = org.apache.spark.sql.SparkSession.active();
    String v = spark.conf().get("spark.sql.leafNodeDefaultParallelism", null);
    return v != null ? Integer.parseInt(v) : spark.sparkContext().defaultParallelism();
  }

  @Override
  public PartitionReaderFactory createReaderFactory() {
    return new IdxReaderFactory(table.layout(), table.options().columnarReads, table.options().batchSize);
  }
}
