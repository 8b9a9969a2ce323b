"""Drag-accuracy helpers for evaluating edits on shapes whose motion is known.

A case is an image before and after a drag, the dragged shape's mask in each
(e.g. segmented by colour), and the requested drag vector (dx, dy) in pixels.
Accuracy is how far the shape's centroid shift lands from the drag vector; a
case counts as a success when that error is within a quarter of the drag
length. Content preservation is the PSNR over pixels outside the shape in both
images (the part of the image the edit should leave alone).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch


def _mask2d(mask) -> torch.Tensor:
    m = torch.as_tensor(mask)
    while m.ndim > 2:
        if m.shape[0] != 1:
            raise ValueError(f"mask must be a single [H,W] map, got shape {tuple(torch.as_tensor(mask).shape)}")
        m = m[0]
    return m.float()


def centroid(mask) -> tuple[float, float]:
    """(x, y) centre of mass of a [H,W] mask (weights in [0,1] allowed)."""
    m = _mask2d(mask)
    total = float(m.sum())
    if total <= 0:
        raise ValueError("empty mask: the shape is not present")
    h, w = m.shape
    ys = torch.arange(h, dtype=torch.float64)
    xs = torch.arange(w, dtype=torch.float64)
    m = m.double()
    return float((m.sum(0) * xs).sum()) / total, float((m.sum(1) * ys).sum()) / total


def color_mask(image, color, tol: float = 0.1) -> torch.Tensor:
    """Pixels of image [H,W,C] (or [C,H,W] with C<=4) within `tol` (max abs) of `color`."""
    img = torch.as_tensor(image).float()
    if img.ndim == 4:
        img = img[0]
    if img.ndim == 3 and img.shape[0] <= 4 and img.shape[-1] > 4:
        img = img.permute(1, 2, 0)
    c = torch.as_tensor(color, dtype=img.dtype)
    return ((img - c).abs().amax(-1) <= tol).float()


def psnr(a, b, region=None, max_value: float = 1.0) -> float:
    """PSNR between images a and b ([H,W] or [H,W,C] / [C,H,W]), over `region` [H,W] if given."""
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    err = (a - b) ** 2
    if region is not None:
        r = _mask2d(region).double()
        if err.ndim == 3 and err.shape[-2:] == r.shape:  # [C,H,W]
            err = err.permute(1, 2, 0)
        if err.ndim == 3:
            r = r[..., None].expand_as(err)
        n = float(r.sum())
        if n == 0:
            raise ValueError("empty PSNR region")
        mse = float((err * r).sum()) / n
    else:
        mse = float(err.mean())
    return math.inf if mse == 0 else 10 * math.log10(max_value ** 2 / mse)


@dataclass
class DragScore:
    shift: tuple[float, float]   # measured centroid shift (dx, dy)
    error: float                 # |shift - drag|, pixels
    drag_length: float
    success: bool                # error <= drag_length / 4
    psnr_outside: float | None   # PSNR outside the shape (before or after), None without images


def score_drag(mask_before, mask_after, drag, image_before=None, image_after=None,
               max_value: float = 1.0) -> DragScore:
    """Score one case: the shape's centroid shift against the drag vector (dx, dy)."""
    (x0, y0), (x1, y1) = centroid(mask_before), centroid(mask_after)
    shift = (x1 - x0, y1 - y0)
    dx, dy = float(drag[0]), float(drag[1])
    length = math.hypot(dx, dy)
    if length == 0:
        raise ValueError("zero-length drag")
    error = math.hypot(shift[0] - dx, shift[1] - dy)
    p = None
    if image_before is not None and image_after is not None:
        outside = 1 - torch.maximum(_mask2d(mask_before), _mask2d(mask_after)).clamp(0, 1)
        p = psnr(image_before, image_after, outside, max_value)
    return DragScore(shift, error, length, error <= length / 4, p)


def summarize(scores: Iterable[DragScore]) -> dict:
    """Mean centroid error, share of successes (within 1/4 drag length), mean finite PSNR outside."""
    scores = list(scores)
    if not scores:
        raise ValueError("no cases")
    ps = [s.psnr_outside for s in scores if s.psnr_outside is not None and math.isfinite(s.psnr_outside)]
    return {
        "cases": len(scores),
        "mean_error": sum(s.error for s in scores) / len(scores),
        "mean_relative_error": sum(s.error / s.drag_length for s in scores) / len(scores),
        "success_rate": sum(s.success for s in scores) / len(scores),
        "mean_psnr_outside": sum(ps) / len(ps) if ps else None,
    }
