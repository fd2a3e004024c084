"""Triton Python-backend model of the peer benchmark
(tests/bench/peers/triton_python_app.py): the suite's no-op, or its batching
model when the model config has the parameter batching_model = "1".

Triton's dynamic batcher hands execute() several requests at once: one
call per batch, as the product's replica gets one. Each request's INPUT has
its rows first (one query of the suite: FP64 [1,2]); each answer is one FP64
OUTPUT of 1.0 per row.
"""
import json
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        self.batching_model = params.get("batching_model", {}).get("string_value") == "1"

    def execute(self, requests):
        rows = [pb_utils.get_input_tensor_by_name(r, "INPUT").as_numpy().shape[0]
                for r in requests]
        if self.batching_model:
            # A large fixed cost per call and a small cost per input
            # (bench_suite's batching_model), one call at a time.
            time.sleep(0.005 + 0.00005 * sum(rows))
        return [pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor("OUTPUT", np.ones((n, 1), dtype=np.float64))])
            for n in rows]
