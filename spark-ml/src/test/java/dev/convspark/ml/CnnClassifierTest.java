package dev.convspark.ml;

import dev.convspark.ml.training.BarrierTraining;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.convspark.datasets.mnist.MnistArrays;
import dev.convspark.tensor.backend.CpuBackend;
import dev.convspark.tensor.backend.ModelRunner;
import dev.convspark.tensor.optim.Optimizer;
import dev.convspark.tensor.spec.ModelSpec;
import dev.convspark.tensor.train.Trainer;
import java.nio.file.Path;
import java.util.List;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.ml.linalg.SQLDataTypes;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The estimator and model on a real local SparkSession and real MNIST. */
class CnnClassifierTest {

  private static SparkSession spark;
  private static Dataset<Row> train;
  private static Dataset<Row> test;

  @TempDir
  static Path tmp;

  @BeforeAll
  static void start() {
    spark = LocalSessions.builder("convspark-ml-tests").getOrCreate();
    Path mnist = MnistArrays.defaultDir().toAbsolutePath();
    train = spark.read().format("idx").option("imageFormat", "vector").option("recordsPerPartition", 20_000)
        .load(mnist.resolve("train-images-idx3-ubyte").toString());
    test = spark.read().format("idx").option("imageFormat", "vector")
        .load(mnist.resolve("t10k-images-idx3-ubyte").toString());
  }

  @AfterAll
  static void stop() {
    spark.stop();
  }

  private static double accuracy(Dataset<Row> predictions) {
    return new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(predictions);
  }

  @Test
  void softmaxRegressionTrainsAcrossPartitionsAndScores() {
    // The tutorial's recipe: SGD 0.01 on the summed loss of 50, which is 0.5 on the mean.
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
        .setBatchSize(50).setMaxIter(1000).setKeepProb(1.0).setSeed(3);
    CnnClassificationModel model = clf.fit(train);
    assertEquals(1000, model.summary().totalIterations());
    assertEquals(2, model.summary().numWorkers());
    assertEquals("barrier", model.summary().syncMode());
    double[] loss = model.summary().objectiveHistory();
    assertTrue(loss[loss.length - 1] < loss[0] / 3, "loss falls: " + loss[0] + " -> " + loss[loss.length - 1]);
    Dataset<Row> scored = model.transform(test);
    assertEquals(SQLDataTypes.VectorType(), scored.schema().apply("rawPrediction").dataType());
    assertEquals(SQLDataTypes.VectorType(), scored.schema().apply("probability").dataType());
    assertEquals(DataTypes.DoubleType, scored.schema().apply("prediction").dataType());
    Row r = scored.first();
    Vector p = r.getAs("probability");
    assertEquals(1.0, java.util.Arrays.stream(p.toArray()).sum(), 1e-5);
    assertEquals((double) p.argmax(), r.<Double>getAs("prediction"));
    double acc = accuracy(scored);
    assertTrue(acc >= 0.91, "softmax regression test accuracy " + acc);
    // MLlib's column metadata, the vectors' sizes and the prediction's classes: VectorAssembler
    // stacks this model's outputs from it, with no pass over the rows (handleInvalid=keep needs it).
    assertEquals(10, org.apache.spark.ml.attribute.AttributeGroup.fromStructField(scored.schema().apply("probability"))
        .size());
    assertEquals(10, org.apache.spark.ml.attribute.AttributeGroup.fromStructField(
        scored.schema().apply("rawPrediction")).size());
    assertEquals(10, ((org.apache.spark.ml.attribute.NominalAttribute) org.apache.spark.ml.attribute.Attribute
        .fromStructField(scored.schema().apply("prediction"))).getNumValues().get());
    Dataset<Row> stacked = new org.apache.spark.ml.feature.VectorAssembler()
        .setInputCols(new String[] {"probability", "rawPrediction"}).setOutputCol("stacked").setHandleInvalid("keep")
        .transform(scored);
    assertEquals(20, stacked.first().<Vector>getAs("stacked").size());
  }

  @Test
  void oneRowIsScoredOutsideADataFrameAsTransformScoresIt() {
    Dataset<Row> few = train.limit(1000);
    CnnClassifier clf = new CnnClassifier().setMaxIter(20).setBatchSize(50).setSeed(5).setNumWorkers(1)
        .setSyncMode("driver");
    CnnClassificationModel model = clf.fit(few);
    assertEquals(784, model.numFeatures());
    org.apache.spark.SparkConf fourCpus = new org.apache.spark.SparkConf().set("spark.task.cpus", "4");
    assertEquals(4, model.scoringThreads(fourCpus), "transform takes spark.task.cpus without threadsPerWorker");
    assertEquals(1, model.scoringThreads(new org.apache.spark.SparkConf()));
    assertEquals(2, model.copy(org.apache.spark.ml.param.ParamMap.empty()).setThreadsPerWorker(2)
        .scoringThreads(fourCpus));
    List<Row> rows = model.transform(test.limit(20)).collectAsList();
    List<double[]> raws = new java.util.ArrayList<>();
    for (Row r : rows) {
      Vector f = r.getAs("features");
      double[] raw = model.predictRaw(f).toArray();
      raws.add(raw);
      assertArrayEquals(r.<Vector>getAs("rawPrediction").toArray(), raw, 1e-4, "one row against its batch");
      assertArrayEquals(r.<Vector>getAs("probability").toArray(), model.predictProbability(f).toArray(), 1e-5);
      assertEquals((double) Vectors.dense(raw).argmax(), model.predict(f));
      assertArrayEquals(raw, model.predictRaw(f.toSparse()).toArray(), 0.0, "a sparse vector reads the same");
    }
    // Another model on the same thread, and training there in between (driver mode trains on the
    // driver's replica): each model still scores with its own parameters.
    CnnClassificationModel other = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setSeed(6).fit(few);
    Vector first = rows.get(0).getAs("features");
    double[] otherRaw = other.predictRaw(first).toArray();
    assertTrue(java.util.Arrays.stream(otherRaw).map(Math::abs).sum() > 0
        && !java.util.Arrays.equals(otherRaw, raws.get(0)), "two seeds, two models");
    assertArrayEquals(raws.get(0), model.predictRaw(first).toArray(), 0.0);
    assertArrayEquals(otherRaw, other.predictRaw(first).toArray(), 0.0);

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> model.predict(Vectors.dense(new double[783])));
    assertTrue(e.getMessage().contains("predict: features holds 783 values but the model's input needs 784"),
        e.getMessage());
    double[] nan = new double[784];
    nan[5] = Double.NaN;
    e = assertThrows(IllegalArgumentException.class, () -> model.predictRaw(Vectors.dense(nan)));
    assertTrue(e.getMessage().contains("predictRaw: features holds a non-finite value (NaN) at position 5"),
        e.getMessage());
  }

  @Test
  void deepMnistReaches97PercentAfter1500StepsOnTwoWorkers() {
    CnnClassificationModel model = new CnnClassifier().setMaxIter(1500).setSeed(1).setNumWorkers(2).fit(train);
    double acc = accuracy(model.transform(test));
    CnnTrainingSummary s = model.summary();
    System.out.printf("deep-mnist on 2 barrier workers, 1500 steps: test accuracy %.4f, %.0f images/s (%.0f in the steps)%n",
        acc, s.imagesPerSecond(), s.stepImagesPerSecond());
    assertTrue(acc >= 0.97, "deep-mnist test accuracy after 1500 steps " + acc);
    assertTrue(s.stepSeconds() > 0 && s.stepSeconds() < s.wallSeconds(),
        "the steps took " + s.stepSeconds() + " s of a " + s.wallSeconds() + " s fit");
    assertTrue(s.exchangeSeconds() > 0 && s.exchangeSeconds() < s.stepSeconds(),
        "from the gradients to the updates: " + s.exchangeSeconds() + " s of the steps' " + s.stepSeconds());
    assertTrue(Double.isNaN(new CnnClassifier().setModel("softmax-regression").setMaxIter(3).setSyncMode("driver")
        .fit(train).summary().exchangeSeconds()), "driver mode times no exchange of its own");
  }

  @Test
  void summedPartitionGradientsEqualSingleProcessTrainingOnTheSameBatch() {
    // The whole dataset is the global batch, so every partition uses all its rows each step and
    // the data order cannot differ: the Spark result must equal the engine trained alone.
    Dataset<Row> small = train.orderBy("index").limit(60).repartition(3);
    String spec = "in28x28x1-conv5x5x4-relu-pool2-dense10";
    CnnClassificationModel m = new CnnClassifier().setModel(spec).setBatchSize(60).setMaxIter(4)
        .setKeepProb(1.0).setSeed(11).setLearningRate(1e-3).fit(small);
    List<Row> rows = small.orderBy("index").collectAsList();
    float[] x = new float[60 * 784];
    int[] y = new int[60];
    for (int i = 0; i < 60; i++) {
      double[] v = rows.get(i).<Vector>getAs("features").toArray();
      for (int j = 0; j < 784; j++) {
        x[i * 784 + j] = (float) v[j];
      }
      y[i] = rows.get(i).getInt(1);
    }
    try (CpuBackend backend = CpuBackend.create(1); ModelRunner runner = backend.open(ModelSpec.parse(spec))) {
      runner.initialize(11);
      Trainer t = new Trainer(runner, Optimizer.create("adam", 1e-3f, runner.paramCount()), 1f, 11);
      for (int s = 0; s < 4; s++) {
        t.step(x, y, 60, 1f / 60);
      }
      float[] local = new float[runner.paramCount()];
      runner.copyParametersTo(local);
      float[] distributed = m.weights();
      double maxDiff = Weights.maxDiff(local, distributed);
      assertTrue(maxDiff < 1e-5, "distributed and single-process weights differ by " + maxDiff);
    }
  }

  @Test
  void barrierAndDriverModesGiveTheSameWeights() {
    Dataset<Row> small = train.orderBy("index").limit(400).repartition(2);
    CnnClassifier clf = new CnnClassifier().setModel("in28x28x1-conv5x5x4-relu-pool2-dense10").setBatchSize(40)
        .setMaxIter(6).setSeed(5).setLearningRate(1e-3).setNumWorkers(2);
    float[] barrier = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setSyncMode("barrier").fit(small).weights();
    float[] driver = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setSyncMode("driver").fit(small).weights();
    double maxDiff = Weights.maxDiff(barrier, driver);
    assertTrue(maxDiff < 1e-5, "barrier and driver weights differ by " + maxDiff);
    // Shifted images: the same shifts in both modes, and they change the training.
    clf.setShiftRange(2);
    float[] barrierShifted = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setSyncMode("barrier").fit(small)
        .weights();
    float[] driverShifted = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setSyncMode("driver").fit(small)
        .weights();
    maxDiff = Weights.maxDiff(barrierShifted, driverShifted);
    assertTrue(maxDiff < 1e-5, "barrier and driver weights with shiftRange 2 differ by " + maxDiff);
    assertTrue(Weights.maxDiff(barrier, barrierShifted) > 1e-4, "shiftRange 2 changed nothing");
  }

  @Test
  void shiftRangeNeedsAnImageInputSmallerThanTheShift() {
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new CnnClassifier().setShiftRange(-1));
    assertTrue(e.getMessage().contains("shiftRange"), e.getMessage());
    Dataset<Row> few = train.limit(20);
    e = assertThrows(IllegalArgumentException.class, () -> new CnnClassifier().setModel("softmax-regression")
        .setShiftRange(2).setMaxIter(1).fit(few));
    assertTrue(e.getMessage().contains("shiftRange=2") && e.getMessage().contains("vector of 784"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> new CnnClassifier().setShiftRange(28).setMaxIter(1).fit(few));
    assertTrue(e.getMessage().contains("shiftRange=28") && e.getMessage().contains("28 x 28"), e.getMessage());
  }

  @Test
  void modelSavesAndLoadsWithMllibsPersistenceAndWorksInAPipeline() throws Exception {
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
        .setBatchSize(50).setMaxIter(20).setKeepProb(1.0);
    Pipeline pipeline = new Pipeline().setStages(new PipelineStage[] {clf});
    PipelineModel fitted = pipeline.fit(train.limit(2000));
    String path = tmp.resolve("pipeline").toString();
    fitted.write().overwrite().save(path);
    PipelineModel loaded = PipelineModel.load(path);
    CnnClassificationModel a = (CnnClassificationModel) fitted.stages()[0];
    CnnClassificationModel b = (CnnClassificationModel) loaded.stages()[0];
    assertEquals(a.uid(), b.uid());
    assertArrayEquals(a.weights(), b.weights());
    // As MLlib's models print themselves.
    assertEquals("CnnClassificationModel: uid=" + a.uid() + ", model=softmax-regression, numClasses=10,"
        + " numFeatures=784", b.toString());
    List<Row> pa = fitted.transform(test.limit(200)).select("prediction", "probability").collectAsList();
    List<Row> pb = loaded.transform(test.limit(200)).select("prediction", "probability").collectAsList();
    assertEquals(pa, pb);
    String estPath = tmp.resolve("estimator").toString();
    clf.setLearningRateSchedule("piecewise").setLearningRateBoundaries(new int[] {10})
        .setLearningRateFactors(new double[] {1, 0.5}).setWarmupSteps(2).setWeightInit("he").setPrecision("tf32");
    clf.write().overwrite().save(estPath);
    CnnClassifier again = CnnClassifier.load(estPath);
    assertEquals(20, again.getOrDefault(again.maxIter()));
    assertEquals("softmax-regression", again.getOrDefault(again.model()));
    assertEquals("piecewise", again.getOrDefault(again.learningRateSchedule()));
    assertArrayEquals(new int[] {10}, (int[]) again.getOrDefault(again.learningRateBoundaries()));
    assertArrayEquals(new double[] {1, 0.5}, (double[]) again.getOrDefault(again.learningRateFactors()));
    assertEquals(2, again.getOrDefault(again.warmupSteps()));
    assertEquals("he", again.getOrDefault(again.weightInit()));
    assertEquals("tf32", again.getOrDefault(again.precision()));
    String modelPath = tmp.resolve("tf32-model").toString();
    b.setPrecision("tf32").write().overwrite().save(modelPath);
    CnnClassificationModel c = CnnClassificationModel.load(modelPath);
    assertEquals("tf32", c.getOrDefault(c.precision()));
    assertEquals("fp32", a.getOrDefault(a.precision()), "fp32 by default");
  }

  @Test
  void weightInitReachesTheWorkers() {
    // One step at a learning rate too small to move anything: the model holds its initial weights.
    Dataset<Row> small = train.orderBy("index").limit(40);
    CnnClassifier clf = new CnnClassifier().setModel("in28x28x1-conv5x5x16-relu-pool2-dense10").setBatchSize(20)
        .setMaxIter(1).setOptimizer("sgd").setLearningRate(1e-12).setSeed(3).setNumWorkers(2);
    float[] tutorial = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).fit(small).weights();
    float[] he = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setWeightInit("HE").fit(small).weights();
    int convWeights = 5 * 5 * 16;
    // The convolution's weights: standard deviation 0.1 or sqrt(2 / 25), truncated (0.88 of it).
    assertEquals(0.088, rms(tutorial, 0, convWeights), 0.01);
    assertEquals(0.88 * Math.sqrt(2.0 / 25), rms(he, 0, convWeights), 0.025);
    assertEquals(0.1f, tutorial[convWeights], 1e-6f);
    assertEquals(0f, he[convWeights], 1e-6f);
    // The dense layer's weights (fan-in 14 * 14 * 16): sqrt(2 / 3136).
    int denseWeights = 3136 * 10;
    assertEquals(0.88 * Math.sqrt(2.0 / 3136), rms(he, convWeights + 16, denseWeights), 0.002);
  }

  private static double rms(float[] w, int from, int n) {
    double sum2 = 0;
    for (int i = from; i < from + n; i++) {
      sum2 += (double) w[i] * w[i];
    }
    return Math.sqrt(sum2 / n);
  }

  @Test
  void imageStructFeaturesFromTheIdxSourceWork() {
    Dataset<Row> images = spark.read().format("idx")
        .load(LocalSessions.mnist("t10k-images-idx3-ubyte")).limit(500);
    CnnClassificationModel m = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd")
        .setLearningRate(0.5).setBatchSize(50).setMaxIter(30).setFeaturesCol("image").fit(images);
    assertEquals(500, m.transform(images).count());
  }

  @Test
  void badLabelsFailBeforeTrainingNamingTheColumn() {
    Dataset<Row> bad = train.limit(100).withColumn("label", org.apache.spark.sql.functions.lit(10));
    Exception e = assertThrows(Exception.class, () -> new CnnClassifier().setModel("softmax-regression")
        .setMaxIter(1).fit(bad));
    String all = Failures.messages(e);
    assertTrue(all.contains("label column 'label' holds 10.0") && all.contains("[0, 10) (the model's last layer has 10"
        + " outputs; for more classes, end the model with a dense layer of as many units, e.g. ...-dense11)"), all);
    Dataset<Row> fractional = train.limit(100).withColumn("label", org.apache.spark.sql.functions.lit(1.5));
    all = Failures.messages(assertThrows(Exception.class, () -> new CnnClassifier().setModel("softmax-regression")
        .setMaxIter(1).fit(fractional)));
    assertTrue(all.contains("holds 1.5"), all);
  }

  @Test
  void badParamValuesFailWhenSetNamingTheParam() {
    CnnClassifier c = new CnnClassifier();
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> c.setLearningRate(-1));
    assertTrue(e.getMessage().contains("learningRate"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> c.setKeepProb(0));
    assertTrue(e.getMessage().contains("keepProb"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> c.setModel("in28x28x1-pool9:valid-pool9:valid"));
    assertTrue(e.getMessage().contains("model"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> c.setOptimizer("rmsprop"));
    assertTrue(e.getMessage().contains("optimizer"), e.getMessage());
    c.setOptimizer("SGD");
    e = assertThrows(IllegalArgumentException.class, () -> c.setWeightInit("xavier"));
    assertTrue(e.getMessage().contains("weightInit"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class, () -> c.setBatchSize(0));
    assertTrue(e.getMessage().contains("batchSize"), e.getMessage());
    assertTrue(c.explainParams().contains("learningRate: learning rate (> 0) (default: 1.0E-4)"), c.explainParams());
  }

  @Test
  void workersInOneJvmTrainedAsOneMatchWorkersSummingOverSockets() {
    // local[2] runs both workers in this JVM on the CPU: worker 0 trains the whole global batch.
    // Over sockets each worker computes its share and the sums travel: the same samples and
    // dropout masks (keepProb 0.5), the same weights up to the order of the additions.
    Dataset<Row> small = train.orderBy("index").limit(400).repartition(2);
    CnnClassifier clf = new CnnClassifier().setModel("in28x28x1-conv5x5x4-relu-pool2-dense32-relu-dropout-dense10")
        .setBatchSize(40).setMaxIter(6).setSeed(5).setLearningRate(1e-3).setNumWorkers(2);
    float[] merged = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).fit(small).weights();
    float[] sockets;
    spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, "socket");
    try {
      sockets = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).fit(small).weights();
    } finally {
      spark.sparkContext().setLocalProperty(BarrierTraining.EXCHANGE, null);
    }
    double maxDiff = Weights.maxDiff(merged, sockets);
    assertTrue(maxDiff < 1e-5, "weights trained as one and over sockets differ by " + maxDiff);
    assertTrue(maxDiff > 0 || java.util.Arrays.equals(merged, sockets), "compared two runs");
  }

  @Test
  void oneTwoAndFourWorkersProduceTheSameWeights() {
    Dataset<Row> small = train.orderBy("index").limit(48);
    CnnClassifier clf = new CnnClassifier().setModel("in28x28x1-conv3x3x4-relu-pool2-dense10").setBatchSize(48)
        .setMaxIter(3).setKeepProb(1.0).setSeed(2).setLearningRate(1e-3);
    float[] one = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setNumWorkers(1).fit(small).weights();
    float[] two = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setNumWorkers(2).fit(small).weights();
    float[] four = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setNumWorkers(4).setSyncMode("driver")
        .fit(small).weights();
    // Four input partitions on two workers: packed per partition, then two blocks per worker.
    float[] packedFirst = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setNumWorkers(2)
        .fit(small.repartition(4)).weights();
    for (float[] other : new float[][] {two, four, packedFirst}) {
      double maxDiff = Weights.maxDiff(one, other);
      assertTrue(maxDiff < 1e-5, "weights differ by " + maxDiff);
    }
  }

  @Test
  void emptyWrongSizeAndTooManyWorkersFailClearly() {
    String m = Failures.messages(assertThrows(Exception.class,
        () -> new CnnClassifier().setModel("softmax-regression").fit(train.limit(0))));
    assertTrue(m.contains("empty dataset"), m);
    m = Failures.messages(assertThrows(Exception.class,
        () -> new CnnClassifier().setModel("in10x10x1-dense10").setMaxIter(1).fit(train.limit(10))));
    assertTrue(m.contains("features column 'features' holds 784 values per row but the model's input needs 100"), m);
    m = Failures.messages(assertThrows(Exception.class,
        () -> new CnnClassifier().setModel("softmax-regression").setNumWorkers(8).setMaxIter(1).fit(train.limit(10))));
    assertTrue(m.contains("numWorkers=8") && m.contains("at most 2 tasks at once"), m);
    m = Failures.messages(assertThrows(Exception.class,
        () -> new CnnClassifier().setFeaturesCol("index").fit(train.limit(10))));
    assertTrue(m.contains("features column 'index' has type bigint"), m);
  }

  @Test
  void thresholdsChangeThePredictionAsMllibsClassifiersDo() throws Exception {
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
        .setBatchSize(50).setMaxIter(20).setKeepProb(1.0).setNumWorkers(1).setSyncMode("driver");
    CnnClassificationModel model = clf.fit(train.limit(2000));
    assertTrue(!model.isDefined(model.thresholds()), "unset by default");
    List<Row> plain = model.transform(test.limit(300)).select("features", "probability", "prediction").collectAsList();
    // Class 1's threshold large: it is predicted only where it is far ahead; class 5's small.
    double[] t = {1, 8, 1, 1, 1, 0.1, 1, 1, 1, 1};
    List<Row> scored = model.setThresholds(t).transform(test.limit(300)).select("probability", "prediction")
        .collectAsList();
    int changed = 0;
    for (int i = 0; i < scored.size(); i++) {
      double[] p = scored.get(i).<Vector>getAs("probability").toArray();
      assertArrayEquals(plain.get(i).<Vector>getAs("probability").toArray(), p, 0.0, "probabilities stay");
      double[] scaled = new double[p.length];
      for (int c = 0; c < p.length; c++) {
        scaled[c] = p[c] / t[c];
      }
      double expected = Vectors.dense(scaled).argmax();
      assertEquals(expected, scored.get(i).<Double>getAs("prediction"), "row " + i);
      assertEquals(expected, model.predict(plain.get(i).<Vector>getAs("features")), "predict(Vector), row " + i);
      changed += expected != plain.get(i).<Double>getAs("prediction") ? 1 : 0;
    }
    assertTrue(changed > 0, "the thresholds changed some predictions");
    // A zero threshold counts as infinitely large: that class is always predicted.
    double[] zero = {1, 1, 1, 0, 1, 1, 1, 1, 1, 1};
    assertEquals(List.of(3.0), model.setThresholds(zero).transform(test.limit(50)).select("prediction").distinct()
        .as(org.apache.spark.sql.Encoders.DOUBLE()).collectAsList());

    // Saved and loaded with the model; set on the estimator, passed on to the model it fits.
    String path = tmp.resolve("thresholds-model").toString();
    model.setThresholds(t).write().overwrite().save(path);
    assertArrayEquals(t, CnnClassificationModel.load(path).getThresholds());
    CnnClassificationModel fitted = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setThresholds(t)
        .setMaxIter(1).fit(train.limit(200));
    assertArrayEquals(t, fitted.getThresholds());

    // Bad values fail when set, a wrong length before training, each naming the param.
    for (double[] bad : new double[][] {{-1, 1}, {0, 0, 1}, {Double.NaN, 1}}) {
      IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> clf.setThresholds(bad));
      assertTrue(e.getMessage().contains("thresholds"), e.getMessage());
    }
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.setThresholds(new double[] {1, 2, 3}));
    assertTrue(e.getMessage().contains("thresholds holds 3 values but the model predicts 10 classes"), e.getMessage());
    e = assertThrows(IllegalArgumentException.class,
        () -> clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setThresholds(new double[] {1, 2, 3}).fit(train));
    assertTrue(e.getMessage().contains("thresholds holds 3 values but the model predicts 10 classes"), e.getMessage());
  }

  @Test
  void aStreamingDataFrameIsScoredAsABatchOneIs() throws Exception {
    CnnClassificationModel model = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd")
        .setLearningRate(0.5).setBatchSize(50).setMaxIter(10).setKeepProb(1.0).setNumWorkers(1).setSyncMode("driver")
        .fit(train.limit(1000));
    String in = tmp.resolve("stream-in").toString();
    test.limit(300).write().parquet(in);
    org.apache.spark.sql.streaming.StreamingQuery q = model.transform(spark.readStream().schema(test.schema()).parquet(in))
        .select("index", "prediction", "probability").writeStream().format("memory").queryName("scoredStream").start();
    try {
      q.processAllAvailable();
    } finally {
      q.stop();
    }
    Dataset<Row> stream = spark.readStream().schema(test.schema()).parquet(in);
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CnnClassifier().fit(stream));
    assertTrue(e.getMessage().startsWith("fit needs a batch DataFrame"), e.getMessage());
    List<Row> streamed = spark.sql("SELECT * FROM scoredStream ORDER BY index").collectAsList();
    assertEquals(300, streamed.size());
    assertEquals(model.transform(spark.read().parquet(in)).select("index", "prediction", "probability").orderBy("index")
        .collectAsList(), streamed);
  }

  @Test
  void initialModelStartsAFitFromASavedModelsWeights() throws Exception {
    Dataset<Row> some = train.limit(3000);
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setLearningRate(0.5)
        .setBatchSize(50).setMaxIter(30).setKeepProb(1.0).setSeed(11);
    CnnClassificationModel first = clf.fit(some);
    String path = tmp.resolve("initial-model").toString();
    first.write().overwrite().save(path);
    // A learning rate too small to move a float: the fit holds the saved weights, in both modes.
    for (String mode : new String[] {"barrier", "driver"}) {
      CnnClassificationModel held = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(path)
          .setLearningRate(1e-30).setMaxIter(1).setSyncMode(mode).fit(some);
      assertArrayEquals(first.weights(), held.weights(), 0f, mode + " mode starts from the saved weights");
    }
    // Trained on, its loss starts where the first fit's ended, not where that one began.
    CnnClassificationModel more = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(path)
        .setMaxIter(5).fit(some);
    double[] before = first.summary().objectiveHistory();
    double[] after = more.summary().objectiveHistory();
    assertTrue(after[0] < before[0] / 2 && after[0] < 2 * before[before.length - 1],
        "first fit " + before[0] + " -> " + before[before.length - 1] + ", the next starts at " + after[0]);

    // A PipelineModel's stage directory is a saved model; the pipeline's own directory is not.
    PipelineModel pipeline = new Pipeline().setStages(new PipelineStage[] {
        clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setMaxIter(2)}).fit(some);
    String pipelinePath = tmp.resolve("initial-pipeline").toString();
    pipeline.write().overwrite().save(pipelinePath);
    String stage;
    try (java.util.stream.Stream<Path> stages = java.nio.file.Files.list(Path.of(pipelinePath, "stages"))) {
      stage = stages.findFirst().orElseThrow().toString();
    }
    CnnClassificationModel fromStage = clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(stage)
        .setLearningRate(1e-30).setMaxIter(1).fit(some);
    assertArrayEquals(((CnnClassificationModel) pipeline.stages()[0]).weights(), fromStage.weights(), 0f);
    IllegalArgumentException notModel = assertThrows(IllegalArgumentException.class,
        () -> clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(pipelinePath).fit(some));
    assertTrue(notModel.getMessage().startsWith("initialModel=" + pipelinePath + " holds no CnnClassificationModel")
        && notModel.getMessage().contains("PipelineModel"), notModel.getMessage());

    String estPath = tmp.resolve("initial-estimator").toString();
    clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(path).write().overwrite().save(estPath);
    CnnClassifier loaded = CnnClassifier.load(estPath);
    assertEquals(path, loaded.getOrDefault(loaded.initialModel()));

    IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
        () -> new CnnClassifier().setInitialModel(path).setMaxIter(1).fit(some));
    assertTrue(e.getMessage().contains("initialModel=" + path + " holds a model of network")
        && e.getMessage().contains("but model is deep-mnist"), e.getMessage());
    String nothing = tmp.resolve("no-model-here").toString();
    e = assertThrows(IllegalArgumentException.class,
        () -> clf.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(nothing).fit(some));
    assertTrue(e.getMessage().startsWith("initialModel=" + nothing + " holds no CnnClassificationModel"),
        e.getMessage());
  }

  @Test
  void evaluateGivesTheFiguresOfMllibsEvaluatorAndChecksTheLabels() {
    CnnClassificationModel model = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd")
        .setLearningRate(0.5).setBatchSize(50).setMaxIter(40).setKeepProb(1.0).setNumWorkers(1).setSyncMode("driver")
        .fit(train.limit(3000));
    Dataset<Row> some = test.limit(2000).withColumnRenamed("label", "digit");
    CnnClassificationSummary s = model.setLabelCol("digit").evaluate(some);
    Dataset<Row> scored = model.transform(some);
    MulticlassClassificationEvaluator ev = new MulticlassClassificationEvaluator().setLabelCol("digit");
    assertEquals(ev.setMetricName("accuracy").evaluate(scored), s.accuracy(), 1e-12);
    assertEquals(ev.setMetricName("weightedPrecision").evaluate(scored), s.weightedPrecision(), 1e-12);
    assertEquals(ev.setMetricName("weightedRecall").evaluate(scored), s.weightedRecall(), 1e-12);
    assertEquals(ev.setMetricName("f1").evaluate(scored), s.weightedFMeasure(), 1e-12);
    assertEquals(ev.setMetricName("weightedFalsePositiveRate").evaluate(scored), s.weightedFalsePositiveRate(), 1e-12);
    double[] labels = s.labels();
    assertEquals(10, labels.length);
    for (int i = 0; i < labels.length; i++) {
      ev.setMetricLabel(labels[i]);
      assertEquals(ev.setMetricName("precisionByLabel").evaluate(scored), s.precisionByLabel()[i], 1e-12);
      assertEquals(ev.setMetricName("recallByLabel").evaluate(scored), s.recallByLabel()[i], 1e-12);
      assertEquals(ev.setMetricName("fMeasureByLabel").evaluate(scored), s.fMeasureByLabel()[i], 1e-12);
    }
    long[][] counts = s.counts();
    long diagonal = 0;
    for (int c = 0; c < 10; c++) {
      diagonal += counts[c][c];
      for (int p = 0; p < 10; p++) {
        assertEquals((double) counts[c][p], s.confusionMatrix().apply(c, p), "true " + c + ", predicted " + p);
      }
    }
    assertEquals(2000, s.count());
    assertEquals(s.accuracy(), diagonal / 2000.0, 1e-12);
    assertTrue(s.accuracy() > 0.8, "accuracy " + s.accuracy());
    assertEquals("digit", s.labelCol());
    assertEquals(2000, s.predictions().count());

    // Bad labels fail naming the column, as training's do.
    org.apache.spark.sql.Column index = org.apache.spark.sql.functions.col("index");
    String m = assertThrows(IllegalArgumentException.class, () -> model.evaluate(some.withColumn("digit",
        org.apache.spark.sql.functions.when(index.equalTo(3), 11).otherwise(1)))).getMessage();
    assertTrue(m.contains("label column 'digit' holds 11.0; labels must be 0-based class indices in [0, 10)"), m);
    m = assertThrows(IllegalArgumentException.class, () -> model.evaluate(some.withColumn("digit",
        org.apache.spark.sql.functions.when(index.equalTo(3), org.apache.spark.sql.functions.lit(null)).otherwise(1))))
        .getMessage();
    assertTrue(m.contains("label column 'digit' holds a null"), m);
    m = assertThrows(IllegalArgumentException.class, () -> model.evaluate(some.withColumn("digit",
        org.apache.spark.sql.functions.lit("seven")))).getMessage();
    assertTrue(m.contains("label column 'digit' has type string") && m.contains("StringIndexer"), m);
    m = assertThrows(IllegalArgumentException.class, () -> model.setLabelCol("label").evaluate(some)).getMessage();
    assertTrue(m.contains("label column 'label' does not exist"), m);
    m = assertThrows(IllegalArgumentException.class, () -> model.setLabelCol("digit").evaluate(some.limit(0)))
        .getMessage();
    assertTrue(m.contains("cannot evaluate on an empty dataset"), m);
  }

  /**
   * Fine-tuning to other classes: a network that differs from initialModel's only in its last dense
   * layer takes the saved weights for every layer before it and weightInit's for that layer.
   */
  @Test
  void initialModelOfAnotherHeadGivesTheLayersBeforeItTheirWeights() throws Exception {
    String digits = "in28x28x1-conv5x5x4-relu-pool2-dense32-relu-dense10";
    String fives = "in28x28x1-conv5x5x4-relu-pool2-dense32-relu-dense5";
    Dataset<Row> some = train.limit(2000);
    CnnClassificationModel first = new CnnClassifier().setModel(digits).setLearningRate(3e-3).setMaxIter(20)
        .setSeed(2).fit(some);
    String path = tmp.resolve("digits").toString();
    first.write().overwrite().save(path);
    Dataset<Row> low = some.where("label < 5");
    // A learning rate too small to move a float: the weights as the fit starts them.
    CnnClassifier tuning = new CnnClassifier().setModel(fives).setLearningRate(1e-30).setMaxIter(1).setSeed(9);
    float[] tuned = tuning.copy(org.apache.spark.ml.param.ParamMap.empty()).setInitialModel(path).fit(low).weights();
    float[] fresh = tuning.fit(low).weights();
    int body = (int) ModelSpec.parse(fives).upTo(ModelSpec.parse(fives).lastDenseLayer()).paramCount();
    assertEquals(body + 32 * 5 + 5, tuned.length);
    assertArrayEquals(java.util.Arrays.copyOf(first.weights(), body), java.util.Arrays.copyOf(tuned, body), 0f,
        "conv1 and dense1 from the saved model");
    assertArrayEquals(java.util.Arrays.copyOfRange(fresh, body, fresh.length),
        java.util.Arrays.copyOfRange(tuned, body, tuned.length), 0f, "dense2 from weightInit, as without initialModel");
    // Another body is refused, naming both networks.
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new CnnClassifier()
        .setModel("in28x28x1-conv5x5x8-relu-pool2-dense32-relu-dense5").setInitialModel(path).setMaxIter(1).fit(low));
    assertTrue(e.getMessage().contains("holds a model of network " + digits) && e.getMessage().contains(
        "differs only from its last dense layer on"), e.getMessage());
  }

  @Test
  void crossValidatorAndTheEvaluatorAcceptTheModel() {
    CnnClassifier clf = new CnnClassifier().setModel("softmax-regression").setOptimizer("sgd").setBatchSize(50)
        .setMaxIter(20).setKeepProb(1.0);
    org.apache.spark.ml.param.ParamMap[] grid = new org.apache.spark.ml.tuning.ParamGridBuilder()
        .addGrid(clf.learningRate(), new double[] {0.05, 0.5}).build();
    org.apache.spark.ml.tuning.CrossValidatorModel cv = new org.apache.spark.ml.tuning.CrossValidator()
        .setEstimator(clf).setEstimatorParamMaps(grid).setNumFolds(2)
        .setEvaluator(new MulticlassClassificationEvaluator().setMetricName("accuracy")).fit(train.limit(1000));
    assertEquals(2, cv.avgMetrics().length);
    assertTrue(accuracy(cv.transform(test.limit(300))) > 0.5);
  }

}
