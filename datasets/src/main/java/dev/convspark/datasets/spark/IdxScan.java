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
 * {@code recordsPerPartition} records and at most {@code spark.sql.files.maxPartitionBytes}
 * bytes; a compressed file is one split.
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
    long maxBytes = SQLConf.get().filesMaxPartitionBytes();
    long recordBytes = Math.max(1, table.layout().recordBytes);
    long perPartition = Math.max(1, Math.min(table.options().recordsPerPartition, maxBytes / recordBytes));
    List<InputPartition> parts = new ArrayList<>();
    for (IdxFile f : table.files()) {
      long count = f.header().count();
      if (f.compressed()) {
        parts.add(new IdxInputPartition(f, 0, count));
        continue;
      }
      for (long first = 0; first < count; first += perPartition) {
        parts.add(new IdxInputPartition(f, first, Math.min(perPartition, count - first)));
      }
    }
    return parts.toArray(new InputPartition[0]);
  }

  @Override
  public PartitionReaderFactory createReaderFactory() {
    return new IdxReaderFactory(table.layout(), table.options().columnarReads, table.options().batchSize);
  }
}
