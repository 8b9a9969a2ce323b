"""Refuse an edit that cannot fit before it starts.

The estimate counts, on the meta device, what the optimization allocates beyond the loaded model: the
replayed decoder blocks' grad-safe weight copies, the activations autograd saves for one iteration, the
feature map upsampled to the half-resolution grid (unless low_memory) and Adam's state
(optimization_bytes; bench/sdxl.py counts a whole SDXL edit the same way, weights included). The
caller passes the free memory (the node takes it from ComfyUI's model_management.get_free_memory), so
the check itself needs no device.
"""
from __future__ import annotations

import torch

GIB = 2 ** 30


class EditTooLarge(MemoryError):
    """The edit's estimated memory exceeds the free memory; raised before any work is done."""

    def __init__(self, estimate_bytes: int, free_bytes: int):
        self.estimate_bytes, self.free_bytes = int(estimate_bytes), int(free_bytes)
        super().__init__(f"DragNoise edit needs about {_size(self.estimate_bytes)} but only "
                         f"{_size(self.free_bytes)} is free; use a smaller image, low_memory, "
                         f"or free memory (unload other models)")


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB // 10 else f"{n / 2 ** 20:.1f} MiB"


def check_fits(estimate: int, free: int) -> None:
    """Raise EditTooLarge when the estimate exceeds the free memory."""
    if estimate > free:
        raise EditTooLarge(estimate, free)


def saved_tensor_bytes(fn, skip=()) -> dict:
    """Run fn() (a forward that builds an autograd graph) and count the bytes autograd saves for its
    backward, by kind: weights (no new memory), attention probabilities (saved only by math attention;
    SDPA's flash / memory-efficient kernels keep O(tokens)) and activations. Works on the meta device.
    Returns {"weights", "attention", "activations"} in bytes and fn's result under "out"."""
    seen, parts, skip_ids = set(), {"weights": 0, "attention": 0, "activations": 0}, {id(t) for t in skip}

    def pack(t):
        if id(t) not in seen:
            seen.add(id(t))
            # batch 1 (times heads) leads activations; weights lead with their output channels
            kind = ("weights" if id(t) in skip_ids or t.ndim == 0 or t.shape[0] > 64 else
                    "attention" if t.ndim >= 3 and t.shape[-1] == t.shape[-2] and t.shape[-1] > 64 else
                    "activations")
            parts[kind] += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return {**parts, "out": out}


def _nbytes(t) -> int:
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


def _meta(t):
    return torch.empty(t.shape, dtype=t.dtype, device="meta") if isinstance(t, torch.Tensor) else t


def optimization_bytes(replay, grid=None, low_memory: bool = False, options: dict | None = None,
                       captured: bool = False) -> dict:
    """What the bottleneck optimization will allocate beyond the loaded model, for a recorded replay
    (DecoderReplay after its recording forward, before prepare()): counted, not run.

    - copies: the replayed blocks' weights (prepare() copies every one, in the compute dtype, on the
      compute device: ReplayWeights) and the recorded tensors they read that are inference tensors,
      which prepare() clones so autograd may save them;
    - activations: what autograd saves for one replay (counted on the meta device: the replayed
      layers compute from meta copies meanwhile, restored on exit);
    - feature: the decoder feature upsampled to the supervision grid and its gradient (official path;
      0 with low_memory);
    - optimizer: the bottleneck in float32, its gradient and Adam's two moments;
    - graph: with `captured` (iterations replayed as a CUDA graph), the graph's private memory pool holds
      one more iteration's activations and feature for as long as the optimization runs (warm-up's
      side-stream blocks are given back before capture: captured.py).
    `options` replaces the replay's transformer options during the count (e.g. an attention override
    that works on meta tensors). Attention probabilities are reported apart and left out of "total":
    the GPU's SDPA kernels do not save them.
    """
    import copy
    from .unet import ReplayWeights
    blocks = list(replay.unet.output_blocks[: replay.index + 1])
    like = replay.bottleneck
    recorded = [v for k, v in replay.skips.items() if k <= replay.index] + [replay.emb, replay.context, replay.ctrl_mid]
    copies = sum(_nbytes(t) for t in recorded if isinstance(t, torch.Tensor) and t.is_inference())
    with torch.inference_mode(False), torch.enable_grad():  # meta tensors made here are not inference tensors
        meta = copy.copy(replay)
        meta.skips = {k: _meta(v) for k, v in replay.skips.items() if k <= replay.index + 1}
        meta.emb, meta.context, meta.ctrl_mid = _meta(replay.emb), _meta(replay.context), _meta(replay.ctrl_mid)
        meta.options = {**(replay.options or {}), **(options or {})}
        b = torch.empty(like.shape, dtype=like.dtype, device="meta", requires_grad=True)
        # the weight copies prepare() makes, as meta tensors of their size (the host's route is not entered)
        shaped = ReplayWeights(blocks, like, make=lambda t: torch.empty(
            t.shape, device="meta", dtype=like.dtype if t.is_floating_point() else t.dtype))
        copies += shaped.nbytes()
        with shaped:
            saved = saved_tensor_bytes(lambda: meta._output_blocks(b, range(replay.index + 1)), skip=shaped.tensors)
    f = saved.pop("out")
    feature = 0
    if grid is not None and not low_memory:
        feature = 2 * f.shape[0] * f.shape[1] * int(grid[0]) * int(grid[1]) * f.element_size()
    optimizer = 4 * replay.bottleneck.numel() * 4
    graph = saved["activations"] + feature if captured else 0
    parts = {"copies": copies, "activations": saved["activations"], "feature": feature, "optimizer": optimizer,
             "graph": graph, "attention": saved["attention"]}
    parts["total"] = copies + saved["activations"] + feature + optimizer + graph
    return parts
