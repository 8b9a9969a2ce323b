"""The CUDA-graph path's faults, injected on the CPU at each stage (warm-up, capture, replay) through a
stand-in for the CUDA calls (captured.CudaGraphs): a Cancel or an out-of-memory error reaches the caller as
itself; a capture failure falls back to the eager iteration from the exact state the last eager iteration
left, after the streams are synchronised; a failure at replay is not swallowed."""
import pytest
import torch

from dragnoise import DecoderReplay, DragConfig, optimize_bottleneck
from dragnoise.captured import graph_or_none

GRID = (32, 32)
HANDLES, TARGETS = [(10.0, 14.0), (20.0, 9.0)], [(17.0, 14.0), (20.0, 17.0)]


class Graphs:
    """CudaGraphs' calls on the CPU. A graph "records" by running the body once and "replays" by running it
    again into the same output tensors (the fixed addresses a CUDA graph writes). fail=(stage, error, call)
    raises `error` from inside the body (as ComfyUI raises Cancel inside a layer) on the call-th body run
    of that stage."""

    def __init__(self, fail=None):
        self.fail, self.stage, self.calls, self.log = fail, None, {}, []

    def stage_of(self, name):
        outer = self

        class Stage:
            def __enter__(self):
                outer.stage = name

            def __exit__(self, *exc):
                outer.stage = None
        return Stage()

    def check(self):  # called by the features function at the start of every body run
        if self.stage is None:
            return
        self.calls[self.stage] = n = self.calls.get(self.stage, 0) + 1
        if self.fail and self.fail[0] == self.stage and self.fail[2] == n:
            self.log.append(f"raise {self.stage}")
            raise self.fail[1]

    def side_stream(self):
        return "side"

    def on(self, stream):
        return self.stage_of("warmup")

    def start(self, stream):
        self.log.append("start")

    def wait(self, stream):
        self.log.append("wait")

    def synchronize(self):
        self.log.append("sync")

    def release_cache(self):
        self.log.append("release")

    def graph(self):
        return {}

    def capture(self, graph, body):
        with self.stage_of("capture"):
            graph["body"], graph["out"] = body, body()
        return graph["out"]

    def replay(self, graph):
        with self.stage_of("replay"):
            new = graph["body"]()
        for k, t in graph["out"].items():
            if isinstance(t, torch.Tensor):
                t.copy_(new[k])


@pytest.fixture(scope="module")
def recorded(tiny_model):
    unet = tiny_model.model.diffusion_model
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(6))
    replay = DecoderReplay(unet)
    with torch.inference_mode():
        unet(x, torch.tensor([681.0]), ctx, transformer_options=replay.recording_options({}, ctx, None))
    return replay


def drag(replay, capture=None, backend=None, fatal=()):
    keep = torch.ones(1, 1, *replay.bottleneck.shape[-2:])
    keep[..., :1, :] = 0  # the mask loss too: its reference is part of what the graph reads
    steps = []

    def decode(b):
        if backend is not None:
            backend.check()
        return replay.decode(b)
    config = DragConfig(iterations=20, lr=1.0, lam=0.1, stop_distance=1.0)
    with torch.inference_mode(False), torch.enable_grad(), replay:
        r = optimize_bottleneck(decode, replay.bottleneck, HANDLES, TARGETS, config, keep,
                                callback=lambda k, n, info: steps.append(info["handles"].tolist()), grid=GRID,
                                capture=capture, backend=backend, fatal=fatal)
    return r, steps


@pytest.fixture(scope="module")
def eager(recorded):
    r, steps = drag(recorded)
    assert len({str(s) for s in steps}) > 2, "the handles hardly moved: the comparisons would be vacuous"
    return r, steps


def same(a, b):
    (ra, sa), (rb, sb) = a, b
    return sa == sb and (ra.iterations, ra.reached, ra.handles, ra.losses) == \
        (rb.iterations, rb.reached, rb.handles, rb.losses) and torch.equal(ra.bottleneck, rb.bottleneck)


@pytest.mark.parametrize("fail", [None, ("warmup", 2), ("capture", 1)])
def test_the_handles_go_back_after_warm_up_and_capture(fail):
    handles = torch.tensor([[3.0, 4.0]])
    g = Graphs(fail=fail and (fail[0], RuntimeError("capture failed"), fail[1]))

    def body():  # tracking moves the handles, then the fault (if any) strikes
        handles.add_(1.0)
        g.check()
        return {"handles": handles.clone()}
    graph = graph_or_none(body, [handles], g)
    assert (graph is None) == (fail is not None)
    assert handles.tolist() == [[3.0, 4.0]]  # as the last eager iteration left them


def test_the_stand_in_graph_computes_the_eager_loop(recorded, eager):
    g = Graphs()
    r = drag(recorded, "graph", g)
    assert r[0].captured and g.calls["replay"] >= 6  # the graph ran the iterations, not the direct body
    assert same(r, eager)


@pytest.mark.parametrize("stage, call", [("warmup", 2), ("capture", 1)])
def test_a_capture_failure_falls_back_from_the_last_eager_state(recorded, eager, stage, call):
    # at warm-up's second run the first has already moved the handles: they must go back
    g = Graphs(fail=(stage, RuntimeError("operation not permitted when stream is capturing"), call))
    r = drag(recorded, "graph", g)
    assert not r[0].captured
    assert same(r, eager)
    after = g.log[g.log.index(f"raise {stage}"):]
    assert "sync" in after and (stage != "warmup" or after.index("wait") < after.index("sync"))


def oom():
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.parametrize("stage, call, kind", [(s, c, k) for s, c in (("warmup", 2), ("capture", 1), ("replay", 1))
                                               for k in ("cancel", "oom")] + [("warmup", 1, "other")])
def test_cancel_and_out_of_memory_reach_the_caller_from_every_stage(comfy_cpu, recorded, stage, call, kind):
    cancel = comfy_cpu.InterruptProcessingException
    error = {"cancel": cancel(), "oom": oom(), "other": ValueError("a bug in a patch")}[kind]
    g = Graphs(fail=(stage, error, call))
    with pytest.raises(type(error)) as e:
        drag(recorded, "graph", g, fatal=(cancel,))
    assert e.value is error
    if stage != "replay":
        assert g.log[-1] != f"raise {stage}" and "sync" in g.log[g.log.index(f"raise {stage}"):]


def test_a_fatal_runtime_error_is_not_taken_for_a_capture_failure(recorded):
    class HostStop(RuntimeError):  # a host whose Cancel is a RuntimeError names it in `fatal`
        pass
    g = Graphs(fail=("capture", HostStop("stop"), 1))
    with pytest.raises(HostStop):
        drag(recorded, "graph", g, fatal=(HostStop,))


def test_a_failure_at_replay_is_not_swallowed(recorded):
    g = Graphs(fail=("replay", RuntimeError("CUDA error: an illegal memory access was encountered"), 2))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        drag(recorded, "graph", g)
