package dev.convspark.ml;

import dev.convspark.ml.training.BarrierTraining;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;

/**
 * Spark's {@code spark.network.crypto.enabled} set: the workers' gradient exchange is encrypted
 * too ({@link dev.convspark.ml.exchange.Encryption}, whose own test finds no gradient on the wire),
 * and training over it, ring and star, gives the weights of training without it.
 */
class EncryptedTrainingTest {

  @Test
  void withSparksNetworkCryptoTheExchangeIsEncryptedAndTrainsTheSameWeights() {
    SparkSession spark = LocalSessions.builder("convspark-encrypted")
        .config("spark.authenticate", "true").config("spark.authenticate.secret", "a test secret")
        // Local mode's tasks otherwise load generated classes through the session's class server,
        // over the authenticated RPC: once, in one run of three, a fetch hung for 120 s there.
        .config("spark.sql.artifact.isolation.enabled", "false")
        .config("spark.network.crypto.enabled", "true").getOrCreate();
    try {
      assertTrue(BarrierTraining.encrypts(spark.sparkContext().getConf()));
      Dataset<Row> small = spark.read().format("idx").option("imageFormat", "vector")
          .load(LocalSessions.mnist("train-images-idx3-ubyte"))
          .orderBy("index").limit(400).repartition(2);
      CnnClassifier clf = new CnnClassifier().setModel("in28x28x1-conv5x5x4-relu-pool2-dense32-relu-dropout-dense10")
          .setBatchSize(40).setMaxIter(6).setSeed(5).setLearningRate(1e-3).setNumWorkers(2);
      // Both workers in this JVM on one device: one unit, nothing crosses a socket.
      float[] merged = clf.copy(ParamMap.empty()).fit(small).weights();
      for (String exchange : new String[] {"socket", "star"}) {
        spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, exchange);
        float[] sealed;
        try {
          sealed = clf.copy(ParamMap.empty()).fit(small).weights();
        } finally {
          spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, null);
        }
        double maxDiff = Weights.maxDiff(merged, sealed);
        assertTrue(maxDiff < 1e-5, exchange + ": weights over the encrypted exchange differ by " + maxDiff);
      }
    } finally {
      spark.stop();
    }
  }
}
