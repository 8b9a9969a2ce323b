"""One optimization iteration replayed as a CUDA graph (issue 24's launch-overhead lever).

At batch 1 a DragNoise iteration is a few hundred small kernels; on a fast GPU their launches, not their
arithmetic, set the time. The iteration's device work (replayed decoder forward, handle tracking, the
handles' distances, alignment and mask loss, backward into the bottleneck's gradient) is recorded once
and replayed. What needs the host stays outside the graph: the stop test (all handles arrived), the
finite-gradient test and Adam's step (a fused kernel or two), so the loop keeps the eager loop's order
and results. Everything the graph reads or writes lives at fixed addresses: the bottleneck (updated in
place by Adam), the tracked handles (copied back into their buffer by the graph).

Faults (issue 28): the host's Cancel, an out-of-memory error and anything that is not a capture failure
reach the caller as themselves, from warm-up, capture or replay; a capture failure (a RuntimeError from
CUDA, e.g. an operation that syncs with the host) falls back to the eager iteration from the exact state
the last eager iteration left (streams synchronised first, the handles put back). The CUDA calls go
through a backend object, so the CPU tests inject a fault at each stage.

With use_graph=False the same iteration runs directly, without a graph: the CPU tests drive the whole
captured loop that way and compare it with the eager loop.
"""
from __future__ import annotations

import contextlib
import logging

import torch


class CudaGraphs:
    """The CUDA calls capture needs; tests pass a stand-in that fails at a chosen stage."""

    def side_stream(self):
        return torch.cuda.Stream()

    def on(self, stream):
        return torch.cuda.stream(stream)

    def start(self, stream):  # `stream` waits for the current stream's work so far
        stream.wait_stream(torch.cuda.current_stream())

    def wait(self, stream):  # the current stream waits for `stream`'s work so far
        torch.cuda.current_stream().wait_stream(stream)

    def synchronize(self):
        torch.cuda.synchronize()

    def release_cache(self):  # warm-up's blocks belong to its side stream: give them back before capture
        torch.cuda.empty_cache()

    def graph(self):
        return torch.cuda.CUDAGraph()

    def capture(self, graph, body):  # records body's kernels into graph; its outputs live in the graph's pool
        with torch.cuda.graph(graph):
            return body()

    def replay(self, graph):
        graph.replay()


class IterationGraph:
    """body() -> dict of tensors, recorded once (use_graph) and replayed by run()."""

    WARMUP = 2  # CUDA graphs want a few uncaptured runs first (cuBLAS workspaces, autograd's buffers)

    def __init__(self, body, state: list[torch.Tensor], use_graph: bool, backend=None):
        self.body, self.graph, self.out, self.backend = body, None, None, backend or CudaGraphs()
        if not use_graph:
            return
        cuda = self.backend
        saved = [t.clone() for t in state]  # warm-up runs move the handles: put them back before capture
        side = cuda.side_stream()
        cuda.start(side)
        try:
            with cuda.on(side):
                for _ in range(self.WARMUP):
                    body()
        except BaseException:
            self._settle(state, saved, side, quiet=True)
            raise
        self._settle(state, saved, side)
        cuda.release_cache()
        graph = cuda.graph()
        try:
            self.out = cuda.capture(graph, body)
        except BaseException:  # a failed capture may have run part of the body: its state goes back too
            self._settle(state, saved, None, quiet=True)
            raise
        self._settle(state, saved, None)
        self.graph = graph

    def _settle(self, state, saved, side, quiet=False):
        """Wait for every kernel (no side-stream work may still write what the caller reads next), then
        put the state back. quiet: while an exception is on its way, a failure here must not replace it."""
        try:
            if side is not None:
                self.backend.wait(side)
            self.backend.synchronize()
        except Exception:
            if not quiet:
                raise
        for t, s in zip(state, saved):
            t.copy_(s)

    def run(self) -> dict:
        if self.graph is None:
            return self.body()
        self.backend.replay(self.graph)
        return self.out


def is_capture_failure(e: BaseException, fatal=()) -> bool:
    """A failure of capture itself, after which the eager iteration may go on: a RuntimeError (what CUDA
    and PyTorch raise for an operation a graph cannot record), but not an out-of-memory error and not
    one of `fatal` (the host's Cancel). Anything else is the caller's to see."""
    return isinstance(e, RuntimeError) and not isinstance(e, (torch.OutOfMemoryError, *fatal))


def graph_or_none(body, state, backend=None, fatal=(), log=logging.getLogger("dragnoise")):
    """An IterationGraph, or None where capture fails (the caller goes on eagerly from the state it had).
    A Cancel (`fatal`), an out-of-memory error and any other exception propagate unchanged."""
    try:
        return IterationGraph(body, state, use_graph=True, backend=backend)
    except Exception as e:
        if not is_capture_failure(e, fatal):
            raise
        log.info("DragNoise: CUDA graph capture not possible here (%s: %s); running eagerly", type(e).__name__, e)
        with contextlib.suppress(Exception):
            (backend or CudaGraphs()).release_cache()
        return None
