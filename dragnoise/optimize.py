"""Bottleneck optimization: semantic alignment, handle tracking, optional mask loss."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .captured import IterationGraph, graph_or_none


@dataclass
class DragConfig:
    iterations: int = 60      # official UI default (DragBench: 80)
    lr: float = 0.01          # official UI default (DragBench: 0.02)
    lam: float = 0.1          # mask loss weight, official UI default (DragBench: 0.2)
    r1: int = 1               # alignment patch radius (3x3), official
    r2: int = 3               # tracking search radius (7x7), official
    stop_distance: float = 1.0  # paper: within 1 px (official code: 2 px)


@dataclass
class DragResult:
    bottleneck: torch.Tensor
    handles: list                 # final tracked handles (x, y) on the supervision grid
    iterations: int               # optimization steps taken
    reached: bool                 # every handle within stop_distance of its target
    losses: list = field(default_factory=list)
    captured: bool = False        # iterations 1.. ran as a replayed CUDA graph (capture="graph" where it worked)


def _grid_coords(xs: torch.Tensor, ys: torch.Tensor, feat: torch.Tensor, grid) -> torch.Tensor:
    """grid_sample coordinates for points (xs, ys) of a (gh, gw) grid that `feat` is resized to.

    Sampling `feat` here equals sampling F.interpolate(feat, grid, mode="bilinear") exactly at whole
    grid cells (tracking, the detached source patch) without building the upsampled map, which the
    official code does every step. Between cells (the unit step's target patch) it is the feature's
    own bilinear value, where the official code interpolates the interpolated map: the two agree
    inside a feature cell and differ slightly across cell borders.
    """
    h, w = feat.shape[-2:]
    gh, gw = grid if grid is not None else (h, w)
    sx = (xs + 0.5) * (w / gw) - 0.5  # the source coordinate F.interpolate(align_corners=False) reads
    sy = (ys + 0.5) * (h / gh) - 0.5
    return torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)


def _sample(feat: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, grid) -> torch.Tensor:
    """Bilinear samples [N, C, k, k] of feat [1,C,H,W] at grid points xs, ys [N, k, k].

    Out-of-grid points take the border value, so handles near an edge neither crash nor wrap
    (the official code slices without bounds checks).
    """
    coords = _grid_coords(xs.to(feat.dtype), ys.to(feat.dtype), feat, grid)
    return F.grid_sample(feat.expand(len(xs), -1, -1, -1), coords, mode="bilinear",
                         padding_mode="border", align_corners=False)


def sample_patches(feat: torch.Tensor, points: torch.Tensor, r: int, grid=None) -> torch.Tensor:
    """(2r+1)^2 patches [N, C, (2r+1)^2] centred at points [N,2] (x, y) of the grid."""
    d = torch.arange(-r, r + 1, device=feat.device, dtype=torch.float32)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    xs = points[:, 0, None, None].float() + dx
    ys = points[:, 1, None, None].float() + dy
    return _sample(feat, xs, ys, grid).flatten(2)


def alignment_loss(feat: torch.Tensor, handles: torch.Tensor, targets: torch.Tensor, r1: int,
                   active: torch.Tensor | None = None, grid=None) -> torch.Tensor:
    """Pull the feature around each handle one unit step toward its target (source detached)."""
    direction = targets - handles
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-8)
    src = sample_patches(feat, handles, r1, grid).detach()
    dst = sample_patches(feat, handles + direction, r1, grid)
    per_handle = (dst.float() - src.float()).abs().mean(dim=(1, 2))
    if active is not None:  # a weight, not an index: no host sync
        per_handle = per_handle * active.to(per_handle.dtype)
    return (2 * r1 + 1) ** 2 * per_handle.sum()


@torch.no_grad()
def track_handles(f0: torch.Tensor, f1: torch.Tensor, init: torch.Tensor, current: torch.Tensor, r2: int,
                  grid=None) -> torch.Tensor:
    """Move each handle to the cell within r2 of it whose feature best matches its initial one (L1).

    All handles at once, on the device. The search window is clipped to the grid (clamped
    cells repeat an edge cell, which cannot win over it).
    """
    gh, gw = grid if grid is not None else f1.shape[-2:]
    k = 2 * r2 + 1
    offs = torch.arange(-r2, r2 + 1, device=f1.device)
    xs = (current[:, 0:1].long() + offs).clamp(0, gw - 1)  # [N, k]
    ys = (current[:, 1:2].long() + offs).clamp(0, gh - 1)
    win = _sample(f1, xs[:, None, :].expand(-1, k, -1), ys[:, :, None].expand(-1, -1, k), grid)  # [N,C,k,k]
    ref = _sample(f0, init[:, 0, None, None].long(), init[:, 1, None, None].long(), grid)  # [N,C,1,1]
    best = (win.float() - ref.float()).abs().sum(1).flatten(1).argmin(1)  # [N], row-major like the official
    return torch.stack([xs.gather(1, (best % k)[:, None])[:, 0], ys.gather(1, (best // k)[:, None])[:, 0]],
                       dim=1).to(current.dtype)


def drag_loop(features: Callable[[torch.Tensor], tuple], x: torch.Tensor, handles, targets,
              config: DragConfig = DragConfig(), regularizer: Callable | None = None,
              callback: Callable[[int, int, dict], None] | None = None, grid=None,
              capture: str | None = None, backend=None, fatal: tuple = ()) -> DragResult:
    """Adam on x: semantic alignment on features(x)[0], handle tracking, stop when all arrive.

    features(x) returns (feature [1,C,h,w], aux); regularizer(x, aux), if given, adds a loss.
    Handles and targets are cells of `grid` (gh, gw), the supervision resolution the feature is
    bilinearly resized to (default: the feature's own size). x keeps its dtype for features();
    Adam works on a float32 copy. DragNoise runs it on the bottleneck; the benchmark's
    DragDiffusion baseline on the noisy latent, so both share every step but the forward.
    capture "graph" replays iterations 1.. as a CUDA graph where the device allows (captured.py; where
    capture fails, the same fused iteration runs without one); "direct" runs the fused iteration without
    a graph (its CPU test against the eager loop). backend: the CUDA calls capture makes (captured.py;
    tests inject faults through it); fatal: the host's exception types (Cancel) that end the drag
    wherever they are raised, capture included.
    """
    dtype = x.dtype
    x0 = x.detach().float()
    handles = torch.as_tensor(handles, dtype=torch.float32, device=x0.device).reshape(-1, 2)
    targets = torch.as_tensor(targets, dtype=torch.float32, device=x0.device).reshape(-1, 2)
    with torch.no_grad():
        f0, _ = features(x0.to(dtype))
    fh, fw = grid if grid is not None else f0.shape[-2:]
    limit = torch.tensor([fw - 1, fh - 1], device=x0.device, dtype=torch.float32)
    handles, targets = handles.clamp(min=0).minimum(limit), targets.clamp(min=0).minimum(limit)
    init = handles.clone()
    v = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([v], lr=config.lr)
    # fp16 gradients of an L1 loss underflow easily; a static scale keeps them (Adam is scale-free).
    scale = 1024.0 if dtype == torch.float16 else 1.0
    if config.iterations <= 1:
        capture = None  # nothing to replay
    handles = handles.clone()  # tracking writes the new positions into this buffer (a graph's fixed address)

    def measure(track: bool):  # forward, tracking, the handles' distances to their targets
        f1, aux = features(v.to(dtype))
        if track:
            handles.copy_(track_handles(f0, f1.detach(), init, handles, config.r2, grid))
        return f1, aux, (targets - handles).norm(dim=1)

    def descend(f1, aux, dist):  # alignment (+ regularizer) loss and its backward into v.grad, scaled
        v.grad = None  # a fresh gradient; under a graph, the graph's own, rewritten by each replay
        loss = alignment_loss(f1, handles, targets, config.r1, dist > config.stop_distance, grid)
        if regularizer is not None:
            loss = loss + regularizer(v, aux)
        (loss * scale).backward()
        return loss.detach()

    def body():  # one iteration's device work in one piece, as a graph records it (captured.py)
        f1, aux, dist = measure(True)
        return {"feature": f1, "aux": aux, "dist": dist, "loss": descend(f1, aux, dist)}

    losses, reached, step, graph = [], False, 0, None
    for step in range(config.iterations + 1):
        # eager: the backward only when the loop goes on; fused (iterations 1.. under capture): the body
        # runs whole, its backward unused on the last iteration, and the host reads the stop test after it
        fused = capture is not None and step > 0
        if fused:
            if graph is None:
                graph = (graph_or_none(body, [handles], backend, fatal)
                         if capture == "graph" and (v.is_cuda or backend is not None) else None) \
                    or IterationGraph(body, [handles], use_graph=False)
            out = graph.run()
            f1, aux, dist = out["feature"], out["aux"], out["dist"]
        else:
            f1, aux, dist = measure(step > 0)
        if bool((dist <= config.stop_distance).all()):
            reached = True
            break
        if step == config.iterations:
            break
        loss = out["loss"].clone() if fused else descend(f1, aux, dist)  # a graph overwrites its outputs
        if scale != 1.0:
            v.grad.div_(scale)
        if torch.isfinite(v.grad).all():
            opt.step()
        losses.append(loss)  # read at the end: a float() here would sync every step
        if callback is not None:  # tensors, unread: a callback that shows them pays for the sync itself
            callback(step, config.iterations, {"loss": loss, "handles": handles.clone(), "feature": f1, "aux": aux})
    return DragResult(v.detach().to(dtype), handles.tolist(), step, reached, [float(t) for t in losses],
                      captured=graph is not None and graph.graph is not None)


def optimize_bottleneck(decode: Callable[[torch.Tensor], torch.Tensor], bottleneck: torch.Tensor,
                        handles, targets, config: DragConfig = DragConfig(),
                        outside_mask: torch.Tensor | None = None,
                        callback: Callable[[int, int, dict], None] | None = None, grid=None,
                        low_memory: bool = False, capture: str | None = None, backend=None,
                        fatal: tuple = ()) -> DragResult:
    """Optimize the bottleneck so the decoder feature moves handles to targets.

    decode(b) returns the decoder feature [1,C,h,w]; handles and targets are cells of `grid`, the
    supervision grid (default: the feature's own size). As the official code, the feature is
    bilinearly upsampled to the grid every step. low_memory samples the handle patches and tracking
    windows from the small feature instead (see _grid_coords): equal at whole cells, the feature's
    own bilinear value between them, so the update differs somewhat (measured in bench/RESULTS.md),
    for a much smaller peak memory at large images. outside_mask, on the bottleneck grid, is 1
    where content must stay: the paper's mask loss lam * |(b - b0) * (1 - M)|_1 on the bottleneck.
    callback(step, total, info) is called after each step (progress, interrupt); info holds the
    step's loss, tracked handles (grid cells) and decoder feature as decode returned it (before
    this step's update). capture, backend, fatal: see drag_loop.
    """
    b0 = bottleneck.detach().float()
    regularizer = None
    if outside_mask is not None and config.lam > 0:
        def regularizer(b, _):
            return config.lam * ((b - b0) * outside_mask).abs().sum()
    if grid is not None and not low_memory:
        size = tuple(int(v) for v in grid)

        def features(b):
            f = decode(b)
            return F.interpolate(f, size=size, mode="bilinear", align_corners=False), f

        def report(step, total, info):  # the feature at decode's resolution, not the upsampled one
            callback(step, total, {**info, "feature": info["aux"]})
        return drag_loop(features, bottleneck, handles, targets, config, regularizer,
                         report if callback is not None else None, capture=capture, backend=backend, fatal=fatal)
    return drag_loop(lambda b: (decode(b), None), bottleneck, handles, targets, config, regularizer, callback, grid,
                     capture=capture, backend=backend, fatal=fatal)
