"""One optimization iteration replayed as a CUDA graph (issue 24's launch-overhead lever).

At batch 1 a DragNoise iteration is a few hundred small kernels; on a fast GPU their launches, not their
arithmetic, set the time. The iteration's device work (replayed decoder forward, handle tracking, the
handles' distances, alignment and mask loss, backward into the bottleneck's gradient) is recorded once
and replayed. What needs the host stays outside the graph: the stop test (all handles arrived), the
finite-gradient test and Adam's step (a fused kernel or two), so the loop keeps the eager loop's order
and results. Everything the graph reads or writes lives at fixed addresses: the bottleneck (updated in
place by Adam), the tracked handles (copied back into their buffer by the graph).

With use_graph=False the same iteration runs directly, without a graph: the CPU tests drive the whole
captured loop that way and compare it with the eager loop.
"""
from __future__ import annotations

import logging

import torch


class IterationGraph:
    """body() -> dict of tensors, recorded once (use_graph) and replayed by run()."""

    WARMUP = 2  # CUDA graphs want a few uncaptured runs first (cuBLAS workspaces, autograd's buffers)

    def __init__(self, body, state: list[torch.Tensor], use_graph: bool):
        self.body, self.graph, self.out = body, None, None
        if not use_graph:
            return
        saved = [t.clone() for t in state]  # warm-up runs move the handles: put them back before capture
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.WARMUP):
                body()
        torch.cuda.current_stream().wait_stream(side)
        for t, s in zip(state, saved):
            t.copy_(s)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = body()

    def run(self) -> dict:
        if self.graph is None:
            return self.body()
        self.graph.replay()
        return self.out


def graph_or_none(body, state, log=logging.getLogger("dragnoise")):
    """An IterationGraph, or None where capture fails (the caller goes on eagerly, nothing lost)."""
    try:
        return IterationGraph(body, state, use_graph=True)
    except Exception as e:  # e.g. a weight patch that syncs with the host, offloaded weights
        log.info("DragNoise: CUDA graph capture not possible here (%s: %s); running eagerly", type(e).__name__, e)
        return None
