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
from test_pyspark import (SLO, answer_http, expect_logistic_regression_answers,  # noqa: F401
                          expect_text_pipeline_answers, measure_against_a_closure,
                          ml_predict, small_lr_model, spark, unique)


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
    for expect in (expect_logistic_regression_answers, expect_text_pipeline_answers):
        app = expect(spark, cluster)
        (c,) = replicas_of(engine, cluster.cm.cluster_name, app, 1)
        assert image_of(c) == DEFAULT_PYSPARK_IMAGE


def test_measure_pyspark_container_start_up_and_per_batch_overhead(spark,  # noqa: F811
                                                                    cluster):
    """Prints the figures (speed is measured, not asserted); checks that
    both paths answer."""
    measure_against_a_closure(spark, cluster, "containers: ")


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
