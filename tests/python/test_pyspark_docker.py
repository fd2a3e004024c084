"""PySpark models on a DockerContainerManager cluster: the manager runs a
pyspark model's replicas from the pyspark image (clipper/pyspark: the
closure image plus a Java runtime and the deployer's pyspark), chosen by
the model's runtime. Models are trained here with a real SparkSession and
every prediction is compared with Spark's own, as in test_pyspark.py.

Needs what test_docker_cluster.py needs (an engine, bash images/build.sh)
plus pyspark and a Java runtime on this host (.ci/setup installs both).
"""
import time
import uuid

import pytest

from clipper_admin import ClipperException
from clipper_admin.deployers import pyspark as pyspark_deployer
from clipper_admin.deployers import python as python_deployer
from clipper_admin.docker_container_manager import DEFAULT_PYSPARK_IMAGE

from test_docker_cluster import (RUN, Clusters, engine, image_of,  # noqa: F401 - fixture
                                 replicas_of)
from test_pyspark import (SLO, _p50_ms, answer_http, expect_spark_answers,  # noqa: F401
                          ml_predict, points, small_lr_model, spark, unique)

from pyspark.ml import Pipeline  # noqa: E402 - .ci/setup installs pyspark
from pyspark.ml.classification import LogisticRegression  # noqa: E402
from pyspark.ml.feature import HashingTF, Tokenizer  # noqa: E402
from pyspark.ml.linalg import Vectors  # noqa: E402


@pytest.fixture(scope="module")
def cluster(engine, request):  # noqa: F811 - engine is test_docker_cluster's fixture
    try:
        engine.images.get(DEFAULT_PYSPARK_IMAGE)
    except Exception as e:  # noqa: BLE001 - docker.errors.ImageNotFound
        pytest.fail("the image {} is missing; build it with `bash images/build.sh` "
                    "({})".format(DEFAULT_PYSPARK_IMAGE, e))
    cs = Clusters(engine, request)
    try:
        yield cs.start("spark")
    finally:
        cs.close()


def test_ml_models_in_pyspark_containers_equal_spark(engine, spark, cluster):  # noqa: F811
    """A logistic regression on doubles and a tokenizer pipeline on strings,
    each in a replica container of the pyspark image."""
    train = spark.createDataFrame([(Vectors.dense(x), y) for x, y in points(200, 3)],
                                  ["features", "label"])
    lr = LogisticRegression(maxIter=20).fit(train)
    app = unique("lr")
    t0 = time.monotonic()
    pyspark_deployer.create_endpoint(cluster.conn, app, "doubles", ml_predict, lr,
                                     spark.sparkContext, slo_micros=SLO)
    print("pyspark model in a container: create_endpoint returned (replica ready) after "
          "{:.2f} s".format(time.monotonic() - t0))
    (c,) = replicas_of(engine, cluster.cm.cluster_name, app, 1)
    assert image_of(c) == DEFAULT_PYSPARK_IMAGE
    queries = [[0.5, 0.2, -0.1], [-0.9, -0.3, 0.4], [0.1, -0.05, 0.0], [-0.2, 0.1, 0.05]]
    want = ml_predict(spark, lr, queries)
    assert len(set(want)) == 2, want  # both classes, so a constant could not pass
    expect_spark_answers(cluster, app, queries, want)

    rows = [("spark is fast and good", 1.0), ("clipper serves models well", 1.0),
            ("slow broken thing", 0.0), ("bad awful slow", 0.0)] * 10
    texts = spark.createDataFrame(rows, ["text", "label"])
    pipeline = Pipeline(stages=[Tokenizer(inputCol="text", outputCol="words"),
                                HashingTF(inputCol="words", outputCol="features",
                                          numFeatures=64),
                                LogisticRegression(maxIter=10)]).fit(texts)

    def classify(spark, model, inputs):
        texts = [x.decode() if isinstance(x, bytes) else str(x) for x in inputs]
        df = spark.createDataFrame([(t,) for t in texts], ["text"])
        return [str(r.prediction) for r in model.transform(df).select("prediction").collect()]

    app = unique("text")
    pyspark_deployer.create_endpoint(cluster.conn, app, "strings", classify, pipeline,
                                     spark.sparkContext, slo_micros=SLO)
    queries = ["fast and good", "awful broken", "clipper is good", "slow slow"]
    want = classify(spark, pipeline, queries)
    assert len(set(want)) == 2, want
    expect_spark_answers(cluster, app, queries, want)


def test_measure_pyspark_container_start_up_and_per_batch_overhead(spark,  # noqa: F811
                                                                    cluster):
    """Prints the figures (speed is measured, not asserted); checks that
    both paths answer."""
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
    print("replica container start-up to ready: pyspark {:.2f} s, closure {:.2f} s".format(
        spark_start, closure_start))
    print("containers, sequential NATS query p50, trivial function: pyspark {:.3f} ms, "
          "closure {:.3f} ms (overhead {:+.3f} ms per batch)".format(sp, cl, sp - cl))


def test_a_missing_pyspark_image_fails_the_deploy_fast_and_the_cluster_keeps_serving(
        engine, spark, request):  # noqa: F811
    missing = "clipper/no-such-pyspark-{}:latest".format(RUN)
    cs = Clusters(engine, request)
    try:
        c = cs.start("nospark", pyspark_image=missing)
        model = small_lr_model(spark)
        app = "nospark-{}".format(uuid.uuid4().hex[:6])
        t0 = time.monotonic()
        with pytest.raises(ClipperException) as e:
            pyspark_deployer.create_endpoint(c.conn, app, "doubles", ml_predict, model,
                                             spark.sparkContext, slo_micros=SLO)
        took = time.monotonic() - t0
        msg = str(e.value)
        print("a pyspark deploy without its image failed after {:.1f} s: {}".format(took, msg))
        assert "model {}:1 (runtime pyspark)".format(app) in msg, msg
        assert missing in msg and "images/build.sh" in msg, msg
        assert "The deploy was undone" in msg, msg
        assert took < 20, took
        alive = unique("alive")
        python_deployer.create_endpoint(c.conn, alive, "doubles",
                                        lambda xs: ["alive"] * len(xs), slo_micros=5000000)
        status, reply = answer_http(c, alive, {"input": [1.0]})
        assert status == 200 and reply["output"] == "alive", reply
    finally:
        cs.close()
