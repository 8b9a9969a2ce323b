"""Handle/target pairs: parsing, validation and scaling to the supervision grid."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_PAIRS = 64  # far beyond any real edit; bounds the work one prompt can ask for


EMPTY = "points is empty: place at least one handle and its target"


class PointsError(ValueError):
    """Bad points input; the message names the field and the problem."""


@dataclass(frozen=True)
class DragPoints:
    handles: tuple[tuple[float, float], ...]  # (x, y) in image pixels
    targets: tuple[tuple[float, float], ...]

    def __len__(self):
        return len(self.handles)

    def to_json(self) -> str:
        return json.dumps([{"handle": list(h), "target": list(t)} for h, t in zip(self.handles, self.targets)])

    def validate_for(self, width: int, height: int) -> None:
        """Raise PointsError if any point lies outside a width x height image."""
        for i, (h, t) in enumerate(zip(self.handles, self.targets)):
            for name, (x, y) in (("handle", h), ("target", t)):
                if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                    raise PointsError(
                        f"points[{i}].{name} ({x:g}, {y:g}) is outside the {width}x{height} image "
                        f"(x must be in [0, {width - 1}], y in [0, {height - 1}])")

    def band(self, width: int, height: int, radius: float):
        """An editable region from the points alone, as a ComfyUI MASK [1, H, W] (1 = may change): every
        pixel within `radius` of a handle -> target segment. For users who paint no mask: on the toy
        benchmark a band about the dragged object's size keeps most of the rest (bench/RESULTS.md)."""
        import torch
        yy, xx = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
        m = torch.zeros(height, width)
        for (hx, hy), (tx, ty) in zip(self.handles, self.targets):
            dx, dy = tx - hx, ty - hy
            t = (((xx - hx) * dx + (yy - hy) * dy) / max(dx * dx + dy * dy, 1e-8)).clamp(0, 1)
            m[torch.hypot(xx - hx - t * dx, yy - hy - t * dy) <= radius] = 1
        return m[None]

    def scaled(self, sx: float, sy: float):
        """Handles and targets on a grid scaled by (sx, sy), rounded to whole cells as the official code does."""
        def s(p):
            return (float(round(p[0] * sx)), float(round(p[1] * sy)))
        return [s(h) for h in self.handles], [s(t) for t in self.targets]


def _coord(value, where: str) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise PointsError(f"{where} must be a pair [x, y], got {json.dumps(value)[:60]}")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise PointsError(f"{where} must hold numbers, got {json.dumps(v)[:40]}")
        try:
            f = float(v)
        except OverflowError:  # an int beyond float range
            f = math.inf
        if not math.isfinite(f):
            raise PointsError(f"{where} holds a non-finite number ({f})")
        out.append(f)
    return out[0], out[1]


def parse_points(text, allow_empty: bool = False) -> DragPoints:
    """Parse '[{"handle":[x,y],"target":[x,y]}, ...]' (image pixels) into DragPoints.

    Also accepts an already-decoded list, or {"pairs": [...]} as some tools wrap it. `allow_empty`
    lets the points node run with no pairs yet, so the image reaches its editor on the first run.
    """
    data = text
    if isinstance(text, str):
        try:
            data = json.loads(text, parse_constant=lambda c: float(c))
        except json.JSONDecodeError as e:
            raise PointsError(f"points is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
        except (ValueError, RecursionError) as e:  # e.g. a 5000-digit number, or thousands of nested brackets
            raise PointsError(f"points could not be read as JSON ({str(e)[:80]})") from None
    if isinstance(data, dict) and "pairs" in data:
        data = data["pairs"]
    if not isinstance(data, list):
        raise PointsError('points must be a JSON list like [{"handle": [x, y], "target": [x, y]}]')
    if not data and not allow_empty:
        raise PointsError(EMPTY)
    if len(data) > MAX_PAIRS:
        raise PointsError(f"points has {len(data)} pairs; at most {MAX_PAIRS} are supported")
    handles, targets = [], []
    for i, pair in enumerate(data):
        if not isinstance(pair, dict) or "handle" not in pair or "target" not in pair:
            raise PointsError(f'points[{i}] must be an object with "handle" and "target"')
        h = _coord(pair["handle"], f"points[{i}].handle")
        t = _coord(pair["target"], f"points[{i}].target")
        if h == t:
            raise PointsError(f"points[{i}] is a zero-length drag: handle and target are both {h}")
        if h in handles:
            raise PointsError(f"points[{i}].handle {h} repeats the handle of points[{handles.index(h)}]")
        handles.append(h)
        targets.append(t)
    return DragPoints(tuple(handles), tuple(targets))
