package dev.convspark.datasets.spark;

import java.util.List;
import java.util.Map;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.sources.DataSourceRegister;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * The {@code idx} data source: {@code spark.read.format("idx").load(path)} reads IDX files (such
 * as MNIST's) as a DataFrame, split across partitions, through Arrow columnar batches. See
 * {@link IdxOptions} for the options. Every file is validated when the read is planned, so a
 * wrong magic number, an unknown type code, a file shorter or longer than its header, or images
 * and labels of different counts fail then, naming the file, before any row is produced.
 */
public final class IdxDataSource implements TableProvider, DataSourceRegister {

  // Spark asks for the schema and then for the table with the same options: resolve (and
  // validate, which decompresses gzip files) once.
  private Map<String, String> lastProperties;
  private IdxTable lastTable;

  @Override
  public String shortName() {
    return "idx";
  }

  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    return table(options).schema();
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    return table(properties);
  }

  private synchronized IdxTable table(Map<String, String> properties) {
    if (lastTable != null && properties.equals(lastProperties)) {
      return lastTable;
    }
    IdxOptions options = IdxOptions.parse(properties);
    List<IdxFile> files = IdxFileResolver.resolve(options, SparkSession.active().sparkContext().hadoopConfiguration());
    IdxFile first = files.get(0);
    IdxLayout layout = IdxLayout.of(first.header(), options, first.labels() != null, first.data().name());
    lastTable = new IdxTable(options, files, layout);
    lastProperties = Map.copyOf(properties);
    return lastTable;
  }
}
