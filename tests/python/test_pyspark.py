"""PySpark models end to end: trained here with a real SparkSession on data
the test makes, deployed with deployers.pyspark.create_endpoint to replicas
that hold their own SparkSession, queried over HTTP and NATS, and every
prediction compared with what Spark itself predicts for the same input.

Needs pyspark (PyPI) and a Java runtime (Debian), which .ci/setup installs.
"""
import os
import statistics
import time
import uuid

import pytest

from clipper_admin import ClipperException
from clipper_admin.deployers import pyspark as pyspark_deployer
from clipper_admin.deployers import python as python_deployer

from conftest import serve_cluster, start_cluster, stop_test_models

from pyspark.ml import Pipeline  # noqa: E402 - .ci/setup installs pyspark
from pyspark.ml.classification import LogisticRegression  # noqa: E402
from pyspark.ml.classification import LogisticRegressionModel  # noqa: E402
from pyspark.ml.feature import HashingTF, Tokenizer  # noqa: E402
from pyspark.ml.linalg import Vectors  # noqa: E402
from pyspark.mllib.classification import LogisticRegressionWithLBFGS  # noqa: E402
from pyspark.mllib.regression import LabeledPoint  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402

SLO = 20000000  # generous: the first batch of a replica warms Spark up


def unique(name):
    return "{}-{}".format(name, uuid.uuid4().hex[:6])


@pytest.fixture(scope="module")
def spark():
    # The JVM must not get the sanitizer runtime the ASan run preloads.
    preload = os.environ.pop("LD_PRELOAD", None)
    try:
        s = (SparkSession.builder.master("local[1]").appName("clipper-test")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "1").getOrCreate())
    finally:
        if preload is not None:
            os.environ["LD_PRELOAD"] = preload
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cluster():
    yield from serve_cluster(start_cluster("spark"))


@pytest.fixture(autouse=True)
def stop_models_after_each_test(request):
    yield
    stop_test_models(request)


def answer_http(cluster, app, body, timeout_s=30.0):
    """The first reply over HTTP that is not the "no connected models"
    default (the frontend learns of a new link a moment after the deploy)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, reply = cluster.http("/{}/predict".format(app), body)
        if status != 200 or not reply.get("default") or time.monotonic() > deadline:
            return status, reply
        time.sleep(0.05)


def points(n, dims):
    """A separable data set: label 1 when the features sum above zero."""
    import random
    rng = random.Random(7)
    rows = []
    for _ in range(n):
        x = [rng.uniform(-1, 1) for _ in range(dims)]
        rows.append((x, 1.0 if sum(x) > 0 else 0.0))
    return rows


def expect_spark_answers(cluster, app, queries, want):
    """Each query alone over HTTP, then all as one batch over NATS: every
    answer a prediction (not the default) equal to Spark's own, want."""
    for q, w in zip(queries, want):
        status, reply = answer_http(cluster, app, {"input": q})
        assert status == 200 and reply["default"] is False, reply
        assert float(reply["output"]) == float(w), (q, reply, w)
    reply = cluster.nats(app, {"input_batch": queries})
    assert [float(p["output"]) for p in reply["batch_predictions"]] == \
        [float(w) for w in want], reply


def small_lr_model(spark):
    """A pyspark.ml logistic regression on two features, trained quickly."""
    train = spark.createDataFrame([(Vectors.dense(x), y) for x, y in points(50, 2)],
                                  ["features", "label"])
    return LogisticRegression(maxIter=5).fit(train)


def ml_predict(spark, model, inputs):
    df = spark.createDataFrame([(Vectors.dense([float(v) for v in x]),) for x in inputs],
                               ["features"])
    return [str(r.prediction) for r in model.transform(df).select("prediction").collect()]


def expect_logistic_regression_answers(spark, cluster):
    """Trains a pyspark.ml LogisticRegression on three doubles, deploys it,
    and compares every answer with Spark's own; returns the app."""
    train = spark.createDataFrame([(Vectors.dense(x), y) for x, y in points(200, 3)],
                                  ["features", "label"])
    model = LogisticRegression(maxIter=20).fit(train)
    app = unique("lr")
    t0 = time.monotonic()
    pyspark_deployer.create_endpoint(cluster.conn, app, "doubles", ml_predict, model,
                                     spark.sparkContext, slo_micros=SLO)
    print("pyspark ml model: create_endpoint returned (replica ready) after {:.2f} s"
          .format(time.monotonic() - t0))
    queries = [[0.5, 0.2, -0.1], [-0.9, -0.3, 0.4], [0.1, -0.05, 0.0], [-0.2, 0.1, 0.05]]
    want = ml_predict(spark, model, queries)
    assert len(set(want)) == 2, want  # both classes, so a constant could not pass
    expect_spark_answers(cluster, app, queries, want)
    return app


def test_ml_logistic_regression_over_http_and_nats_equals_spark(spark, cluster):
    expect_logistic_regression_answers(spark, cluster)


def test_mllib_model_equals_spark(spark, cluster):
    sc = spark.sparkContext
    data = sc.parallelize([LabeledPoint(y, x) for x, y in points(200, 2)])
    model = LogisticRegressionWithLBFGS.train(data, iterations=50)

    def predict(spark, model, inputs):
        return [str(model.predict([float(v) for v in x])) for x in inputs]

    app = unique("mllib")
    pyspark_deployer.create_endpoint(cluster.conn, app, "doubles", predict, model, sc,
                                     slo_micros=SLO)
    queries = [[0.7, 0.1], [-0.6, -0.2], [0.05, -0.5], [-0.1, 0.4]]
    want = [str(model.predict(q)) for q in queries]
    assert len(set(want)) == 2, want
    expect_spark_answers(cluster, app, queries, want)


def text_pipeline_model(spark):
    """A pyspark.ml Pipeline (Tokenizer, HashingTF, LogisticRegression) that
    tells good reviews from bad."""
    good = ["great fast service", "really great food", "fast friendly great",
            "loved it great", "great value", "friendly and fast"]
    bad = ["slow cold food", "terrible slow service", "rude and slow", "cold terrible",
           "awful slow", "never again awful"]
    train = spark.createDataFrame([(t, 1.0) for t in good] + [(t, 0.0) for t in bad],
                                  ["text", "label"])
    pipeline = Pipeline(stages=[Tokenizer(inputCol="text", outputCol="words"),
                                HashingTF(inputCol="words", outputCol="features",
                                          numFeatures=64),
                                LogisticRegression(maxIter=20)])
    return pipeline.fit(train)


def text_predict(spark, model, inputs):
    texts = [x.decode() if isinstance(x, bytes) else str(x) for x in inputs]
    df = spark.createDataFrame([(t,) for t in texts], ["text"])
    return [str(r.prediction) for r in model.transform(df).select("prediction").collect()]


def expect_text_pipeline_answers(spark, cluster):
    """Deploys text_pipeline_model (strings input) and compares every
    answer with Spark's own."""
    model = text_pipeline_model(spark)
    app = unique("text")
    pyspark_deployer.create_endpoint(cluster.conn, app, "strings", text_predict, model,
                                     spark.sparkContext, slo_micros=SLO)
    queries = ["great fast food", "slow and rude", "friendly great value", "cold awful food"]
    want = text_predict(spark, model, [q.encode() for q in queries])
    assert len(set(want)) == 2, want
    expect_spark_answers(cluster, app, queries, want)
    return app


def test_ml_pipeline_with_a_tokenizer_on_strings_equals_spark(spark, cluster):
    expect_text_pipeline_answers(spark, cluster)


def still_serves(cluster):
    app = unique("alive")
    python_deployer.create_endpoint(cluster.conn, app, "doubles",
                                    lambda xs: ["alive"] * len(xs), slo_micros=5000000)
    status, reply = answer_http(cluster, app, {"input": [1.0]})
    assert status == 200 and reply["output"] == "alive", reply


def test_a_function_that_raises_is_a_clear_error_and_the_cluster_keeps_serving(
        spark, cluster):
    model = small_lr_model(spark)

    def broken(spark, model, inputs):
        raise ValueError("this model refuses {} inputs".format(len(inputs)))

    app = unique("raises")
    pyspark_deployer.create_endpoint(cluster.conn, app, "doubles", broken, model,
                                     spark.sparkContext, slo_micros=SLO)
    status, reply = answer_http(cluster, app, {"input": [0.1, 0.2]})
    text = str(reply)
    assert "this model refuses 1 inputs" in text and "ValueError" in text, (status, reply)
    still_serves(cluster)


class UnloadableModel(LogisticRegressionModel):
    """Saved like its parent, but its class exists only in this test
    module, which the replica cannot import."""


def test_a_model_that_cannot_be_loaded_fails_the_deploy_and_the_cluster_keeps_serving(
        spark, cluster):
    fitted = small_lr_model(spark)
    model = UnloadableModel(fitted._java_obj)
    app = unique("unloadable")
    t0 = time.monotonic()
    with pytest.raises(ClipperException) as e:
        pyspark_deployer.create_endpoint(cluster.conn, app, "doubles", ml_predict, model,
                                         spark.sparkContext, slo_micros=SLO)
    assert "UnloadableModel" in str(e.value) and "cannot import" in str(e.value), str(e.value)
    assert time.monotonic() - t0 < 60
    still_serves(cluster)


def test_bad_arguments_are_refused_before_anything_is_deployed(spark, cluster):
    with pytest.raises(ClipperException, match="pyspark.ml or pyspark.mllib model"):
        pyspark_deployer.deploy_pyspark_model(cluster.conn, unique("x"), 1, "doubles",
                                              ml_predict, object(), spark.sparkContext)
    data = spark.sparkContext.parallelize([LabeledPoint(y, x) for x, y in points(20, 2)])
    mllib = LogisticRegressionWithLBFGS.train(data, iterations=5)
    with pytest.raises(ClipperException, match="sc must be the SparkContext"):
        pyspark_deployer.deploy_pyspark_model(cluster.conn, unique("x"), 1, "doubles",
                                              ml_predict, mllib, None)
    assert cluster.conn.get_all_models() == [] or all(
        not m.startswith("x-") for m in cluster.conn.get_all_models())


def _p50_ms(cluster, app, n=200):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        reply = cluster.nats(app, {"input": [1.0, 2.0]})
        lat.append((time.perf_counter() - t) * 1000)
        assert reply["default"] is False, reply
    return statistics.median(lat)


def test_measure_start_up_and_per_batch_overhead_against_a_closure(spark, cluster):
    """Prints the figures the issue asks for; checks only that both paths
    answer (speed is measured, not asserted)."""
    measure_against_a_closure(spark, cluster, "")


def measure_against_a_closure(spark, cluster, where):
    """Deploys the same trivial function as a pyspark model and as a closure
    and prints their start-up to ready and p50 per sequential NATS query."""
    model = small_lr_model(spark)
    spark_app, closure_app = unique("sp-trivial"), unique("cl-trivial")
    t0 = time.monotonic()
    pyspark_deployer.create_endpoint(cluster.conn, spark_app, "doubles",
                                     lambda spark, model, xs: [str(len(x)) for x in xs],
                                     model, spark.sparkContext, slo_micros=SLO)
    spark_start = time.monotonic() - t0
    t0 = time.monotonic()
    python_deployer.create_endpoint(cluster.conn, closure_app, "doubles",
                                    lambda xs: [str(len(x)) for x in xs], slo_micros=SLO)
    closure_start = time.monotonic() - t0
    answer_http(cluster, spark_app, {"input": [1.0, 2.0]})
    answer_http(cluster, closure_app, {"input": [1.0, 2.0]})
    sp, cl = _p50_ms(cluster, spark_app), _p50_ms(cluster, closure_app)
    print("{}replica start-up to ready: pyspark {:.2f} s, closure {:.2f} s".format(
        where, spark_start, closure_start))
    print("{}sequential NATS query p50, trivial function: pyspark {:.3f} ms, closure {:.3f} ms "
          "(overhead {:+.3f} ms per batch)".format(where, sp, cl, sp - cl))
