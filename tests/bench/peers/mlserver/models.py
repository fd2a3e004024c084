"""MLServer runtimes of the peer benchmark (tests/bench/peers/mlserver_app.py
writes the settings that load them): the suite's no-op and batching models.

Both take a KServe v2 request whose first input has the batch as its first
dimension (one query of the suite: an FP64 tensor of shape [1,2]) and answer
one FP64 OUTPUT of 1.0 per row. MLServer's adaptive batching, when on,
stacks the rows of several requests into one call and splits the answer.
"""
import asyncio

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


def ones(name, rows):
    return InferenceResponse(model_name=name, outputs=[
        ResponseOutput(name="OUTPUT", shape=[rows, 1], datatype="FP64", data=[1.0] * rows)])


class Noop(MLModel):
    """No-op model: 1.0 for every input row."""

    async def load(self):
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return ones(self.name, payload.inputs[0].shape[0])


class Batch(MLModel):
    """Batching model: one call costs 5 ms + 0.05 ms per input row, one call
    at a time (a lock around an asyncio sleep: the event loop of the worker
    stays free to take requests, as Ray's async batch handler)."""

    async def load(self):
        self._busy = asyncio.Lock()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        rows = payload.inputs[0].shape[0]
        async with self._busy:
            await asyncio.sleep(0.005 + 0.00005 * rows)
        return ones(self.name, rows)
