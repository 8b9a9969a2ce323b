"""Bottleneck optimization: semantic alignment, handle tracking, optional mask loss."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F


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


def sample_patches(feat: torch.Tensor, points: torch.Tensor, r: int) -> torch.Tensor:
    """Bilinear (2r+1)^2 patches of feat [1,C,H,W] centred at points [N,2] (x, y).

    Out-of-image samples take the border value, so handles near an edge neither
    crash nor wrap (the official code slices without bounds checks).
    """
    _, c, h, w = feat.shape
    d = torch.arange(-r, r + 1, device=feat.device, dtype=feat.dtype)
    dy, dx = torch.meshgrid(d, d, indexing="ij")
    xs = points[:, 0, None, None].to(feat.dtype) + dx
    ys = points[:, 1, None, None].to(feat.dtype) + dy
    grid = torch.stack([2 * xs / max(w - 1, 1) - 1, 2 * ys / max(h - 1, 1) - 1], dim=-1)  # [N,k,k,2]
    out = F.grid_sample(feat.expand(len(points), -1, -1, -1), grid, mode="bilinear",
                        padding_mode="border", align_corners=True)
    return out.flatten(2)  # [N, C, k*k]


def alignment_loss(feat: torch.Tensor, handles: torch.Tensor, targets: torch.Tensor, r1: int,
                   active: torch.Tensor | None = None) -> torch.Tensor:
    """Pull the feature around each handle one unit step toward its target (source detached)."""
    if active is not None:
        handles, targets = handles[active], targets[active]
    if len(handles) == 0:
        return feat.sum() * 0
    direction = targets - handles
    direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-8)
    src = sample_patches(feat, handles, r1).detach()
    dst = sample_patches(feat, handles + direction, r1)
    per_handle = (dst - src).abs().mean(dim=(1, 2))
    return (2 * r1 + 1) ** 2 * per_handle.sum()


@torch.no_grad()
def track_handles(f0: torch.Tensor, f1: torch.Tensor, init: torch.Tensor, current: torch.Tensor, r2: int) -> torch.Tensor:
    """Move each handle to the cell within r2 of it whose feature best matches its initial one (L1)."""
    _, _, h, w = f1.shape
    out = current.clone()
    for i in range(len(current)):
        x0, y0 = int(init[i, 0]), int(init[i, 1])
        ref = f0[0, :, y0, x0]
        cx, cy = int(current[i, 0]), int(current[i, 1])
        xa, xb = max(cx - r2, 0), min(cx + r2 + 1, w)
        ya, yb = max(cy - r2, 0), min(cy + r2 + 1, h)
        dist = (f1[0, :, ya:yb, xa:xb] - ref[:, None, None]).abs().sum(0)
        row, col = divmod(int(dist.argmin()), dist.shape[1])
        out[i, 0], out[i, 1] = xa + col, ya + row
    return out


def optimize_bottleneck(decode: Callable[[torch.Tensor], torch.Tensor], bottleneck: torch.Tensor,
                        handles, targets, config: DragConfig = DragConfig(),
                        outside_mask: torch.Tensor | None = None,
                        callback: Callable[[int, int, dict], None] | None = None) -> DragResult:
    """Optimize the bottleneck so the decoder feature moves handles to targets.

    decode(b) must return the supervision feature [1,C,H,W] (grid of the handle
    coordinates). outside_mask, on the bottleneck grid, is 1 where content must
    stay: the paper's mask loss lam * |(b - b0) * (1 - M)|_1 on the bottleneck.
    callback(step, total, info) is called after each step (progress, interrupt).
    """
    dtype = bottleneck.dtype
    b0 = bottleneck.detach().float()
    handles = torch.as_tensor(handles, dtype=torch.float32, device=b0.device).reshape(-1, 2)
    targets = torch.as_tensor(targets, dtype=torch.float32, device=b0.device).reshape(-1, 2)
    with torch.no_grad():
        f0 = decode(b0.to(dtype)).float()
    _, _, fh, fw = f0.shape
    limit = torch.tensor([fw - 1, fh - 1], device=b0.device, dtype=torch.float32)
    handles, targets = handles.clamp(min=0).minimum(limit), targets.clamp(min=0).minimum(limit)
    init = handles.clone()
    b = b0.clone().requires_grad_(True)
    opt = torch.optim.Adam([b], lr=config.lr)
    # fp16 gradients of an L1 loss underflow easily; a static scale keeps them (Adam is scale-free).
    scale = 1024.0 if dtype == torch.float16 else 1.0
    losses, reached, step = [], False, 0
    for step in range(config.iterations + 1):
        f1 = decode(b.to(dtype)).float()
        if step > 0:
            handles = track_handles(f0, f1.detach(), init, handles, config.r2)
        dist = (targets - handles).norm(dim=1)
        if bool((dist <= config.stop_distance).all()):
            reached = True
            break
        if step == config.iterations:
            break
        loss = alignment_loss(f1, handles, targets, config.r1, active=dist > config.stop_distance)
        if outside_mask is not None and config.lam > 0:
            loss = loss + config.lam * ((b - b0) * outside_mask).abs().sum()
        opt.zero_grad(set_to_none=True)
        (loss * scale).backward()
        if scale != 1.0:
            b.grad.div_(scale)
        if torch.isfinite(b.grad).all():
            opt.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, config.iterations, {"loss": losses[-1], "handles": handles.tolist()})
    return DragResult(b.detach().to(dtype), handles.tolist(), step, reached, losses)
