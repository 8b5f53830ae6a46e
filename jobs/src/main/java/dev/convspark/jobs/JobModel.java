package dev.convspark.jobs;

import dev.convspark.ml.CnnClassificationModel;
import java.io.IOException;
import java.util.Arrays;
import java.util.stream.Collectors;
import org.apache.hadoop.fs.Path;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.Transformer;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.sql.SparkSession;

/**
 * Reads the jobs' {@code --model}: a folder saved by {@code train} (its {@code model/}), by
 * {@link CnnClassificationModel#save} or by the {@code save} of a {@link PipelineModel} whose one
 * stage is a {@code CnnClassificationModel} (as the README's Pipeline example writes). Anything
 * else is a usage error naming the flag and what the folder holds, before Spark's reader would log
 * a stack trace for it.
 */
final class JobModel {

  private JobModel() {
  }

  /** The model saved at {@code path}, given as {@code flag}. */
  static CnnClassificationModel load(SparkSession spark, String flag, String path) throws IOException {
    String wanted = "a folder saved by train (its model/), CnnClassificationModel.save or a Pipeline's save";
    Path metadata = new Path(path, "metadata");
    if (!metadata.getFileSystem(spark.sparkContext().hadoopConfiguration()).exists(metadata)) {
      throw new UsageException(flag + " " + path + " holds no saved model (" + metadata + " does not exist): give "
          + wanted);
    }
    // An empty expected class name reads the metadata whatever class wrote it.
    String saved = DefaultParamsReader.loadMetadata(path, spark, "").className();
    if (saved.equals(CnnClassificationModel.class.getName())) {
      return CnnClassificationModel.read().session(spark).load(path);
    }
    if (saved.equals(PipelineModel.class.getName())) {
      Transformer[] stages = PipelineModel.read().session(spark).load(path).stages();
      if (stages.length == 1 && stages[0] instanceof CnnClassificationModel m) {
        return m;
      }
      String names = Arrays.stream(stages).map(s -> s.getClass().getSimpleName()).collect(Collectors.joining(", "));
      throw new UsageException(flag + " " + path + " holds a PipelineModel of " + stages.length + " stage"
          + (stages.length == 1 ? "" : "s") + " (" + names + "); the jobs read their input themselves and score with"
          + " a CnnClassificationModel alone: give its stage's folder under " + new Path(path, "stages")
          + ", or a pipeline of that one stage");
    }
    throw new UsageException(flag + " " + path + " holds a " + saved + ", not a CnnClassificationModel: give " + wanted);
  }
}
