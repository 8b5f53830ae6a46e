package dev.convspark.datasets.spark;

import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/** The IDX files of one read, resolved and validated, with their layout. */
final class IdxTable implements SupportsRead {

  private final IdxOptions options;
  private final List<IdxFile> files;
  private final IdxLayout layout;

  IdxTable(IdxOptions options, List<IdxFile> files, IdxLayout layout) {
    this.options = options;
    this.files = files;
    this.layout = layout;
  }

  @Override
  public String name() {
    return "idx " + options.path;
  }

  @Override
  public StructType schema() {
    return layout.schema();
  }

  @Override
  public Set<TableCapability> capabilities() {
    return EnumSet.of(TableCapability.BATCH_READ);
  }

  @Override
  public ScanBuilder newScanBuilder(CaseInsensitiveStringMap scanOptions) {
    return () -> new IdxScan(this);
  }

  IdxOptions options() {
    return options;
  }

  List<IdxFile> files() {
    return files;
  }

  IdxLayout layout() {
    return layout;
  }
}
