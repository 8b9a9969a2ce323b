"""Handle/target pairs and the painted editable region: parsing, validation, rasterizing, and scaling
to the supervision grid.

The `points` text is either the plain list of pairs (no region), or an object
    {"pairs": [{"handle": [x, y], "target": [x, y]}, ...],
     "region": {"size": [W, H], "strokes": [{"erase": false, "radius": 24, "points": [[x, y], ...]}, ...]}}
in image pixels. Strokes apply in order: a paint stroke sets every pixel within `radius` of its
polyline (pixel (x, y) at distance 0 from the point [x, y]), an erase stroke clears them. The point
editor (web/dragnoise/region.js) draws its overlay by the same rule.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

MAX_PAIRS = 64  # far beyond any real edit; bounds the work one prompt can ask for
# bounds on a region, for the same reason: the editor thins a stroke to a point every few pixels,
# so a busy painting stays in the hundreds of points
MAX_STROKES, MAX_STROKE_POINTS, MAX_RADIUS, MAX_SIDE = 256, 8192, 1024, 16384


EMPTY = "points is empty: place at least one handle and its target"


class PointsError(ValueError):
    """Bad points input; the message names the field and the problem."""


@dataclass(frozen=True)
class Stroke:
    erase: bool
    radius: float
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Region:
    """The editable region painted in the point editor, as the strokes that drew it."""
    size: tuple[int, int]  # (width, height) of the image it was painted on
    strokes: tuple[Stroke, ...]

    def to_dict(self) -> dict:
        return {"size": list(self.size), "strokes": [
            {"erase": s.erase, "radius": s.radius, "points": [list(p) for p in s.points]} for s in self.strokes]}

    def rasterize(self):
        """The region as a ComfyUI MASK [1, H, W] (1 = may change). A stroke's shape is convex per segment
        (a capsule), so each image row meets it in one span: the spans of a run of same-kind strokes
        are summed into a difference array and filled by one cumulative sum. The work grows with rows
        x segments plus the painted box, not with segments x pixels."""
        import torch
        w, h = self.size
        m = torch.zeros(h, w)
        runs = []  # consecutive strokes of one kind: their union is order-free
        for s in self.strokes:
            if runs and runs[-1][0] == s.erase:
                runs[-1][1].append(s)
            else:
                runs.append((s.erase, [s]))
        for erase, strokes in runs:
            segs = []
            for s in strokes:
                pts = s.points if len(s.points) > 1 else s.points * 2  # a click paints a disc
                segs += [(*a, *b, s.radius) for a, b in zip(pts, pts[1:])]
            cover = torch.zeros(h, w + 1, dtype=torch.int32)
            for k in range(0, len(segs), 256):  # bounded memory: 256 segments x rows at a time
                _spans(torch.tensor(segs[k:k + 256], dtype=torch.float64), cover)
            painted = cover[:, :w].cumsum(1) > 0
            m[painted] = 0.0 if erase else 1.0
        return m[None]


def _spans(seg, cover):
    """Add +1 at the first and -1 after the last pixel of each segment's span on each row it meets.
    seg: [S, 5] (ax, ay, bx, by, radius); pixel (x, y) is in the capsule when its distance to the
    segment is <= radius."""
    import torch
    h, w = cover.shape[0], cover.shape[1] - 1
    ax, ay, bx, by, r = seg.unbind(1)
    y0 = torch.clamp(torch.ceil(torch.minimum(ay, by) - r), 0, h - 1).long()
    y1 = torch.clamp(torch.floor(torch.maximum(ay, by) + r), -1, h - 1).long()
    rows = int((y1 - y0 + 1).clamp(min=0).max()) if len(seg) else 0
    if rows == 0:
        return
    y = (y0[:, None] + torch.arange(rows)[None]).double()  # [S, rows]
    valid = y <= y1[:, None]
    inf = torch.full_like(y, math.inf)
    lo, hi = inf.clone(), -inf

    def add(lo_k, hi_k, ok):
        nonlocal lo, hi
        ok = ok & (lo_k <= hi_k)
        lo = torch.where(ok, torch.minimum(lo, lo_k), lo)
        hi = torch.where(ok, torch.maximum(hi, hi_k), hi)

    R = r[:, None]
    for px, py in ((ax, ay), (bx, by)):  # the discs at the ends
        dy = y - py[:, None]
        half = torch.sqrt((R * R - dy * dy).clamp(min=0))
        add(px[:, None] - half, px[:, None] + half, dy * dy <= R * R)
    dx, dyy = (bx - ax)[:, None], (by - ay)[:, None]
    length = torch.hypot(dx, dyy)
    ux, uy = dx / length.clamp(min=1e-12), dyy / length.clamp(min=1e-12)
    c = y - ay[:, None]
    # the body: 0 <= (x - ax) ux + c uy <= length and |c ux - (x - ax) uy| <= r, each a span in x
    b_lo, b_hi = torch.full_like(y, -math.inf), torch.full_like(y, math.inf)
    ok = length > 0
    for coef, low, high in ((ux, -c * uy, length - c * uy), (-uy, -R - c * ux, R - c * ux)):
        nz = coef != 0
        q = torch.where(nz, coef, torch.ones_like(coef))
        e1, e2 = low / q, high / q
        b_lo = torch.where(nz, torch.maximum(b_lo, torch.minimum(e1, e2)), b_lo)
        b_hi = torch.where(nz, torch.minimum(b_hi, torch.maximum(e1, e2)), b_hi)
        ok = ok & (nz | ((low <= 0) & (0 <= high)))  # coef 0: the row is wholly in or out
    add(ax[:, None] + b_lo, ax[:, None] + b_hi, ok)
    xl = torch.ceil(lo - 1e-9).clamp(min=0)
    xr = torch.floor(hi + 1e-9).clamp(max=w - 1)
    keep = valid & (xl <= xr)
    yi = y[keep].long()
    cover.index_put_((yi, xl[keep].long()), torch.ones_like(yi, dtype=torch.int32), accumulate=True)
    cover.index_put_((yi, xr[keep].long() + 1), -torch.ones_like(yi, dtype=torch.int32), accumulate=True)


@dataclass(frozen=True)
class DragPoints:
    handles: tuple[tuple[float, float], ...]  # (x, y) in image pixels
    targets: tuple[tuple[float, float], ...]
    region: Region | None = None  # painted in the editor; None: nothing painted

    def __len__(self):
        return len(self.handles)

    def to_json(self) -> str:
        pairs = [{"handle": list(h), "target": list(t)} for h, t in zip(self.handles, self.targets)]
        return json.dumps(pairs if self.region is None else {"pairs": pairs, "region": self.region.to_dict()})

    def region_mask(self, width: int, height: int):
        """The painted region as a MASK [1, height, width] (1 = may change), or None when nothing is
        painted (no region, or every stroke erased): the whole image may change, as officially.
        Raises PointsError for a region painted on another image size, or one that leaves a handle
        outside it (that pair could not move: its content is held where it is)."""
        if self.region is None:
            return None
        if tuple(self.region.size) != (width, height):
            w, h = self.region.size
            raise PointsError(f"points.region was painted on a {w}x{h} image, but the image is {width}x{height}: "
                              "clear the region in the editor and paint it again")
        m = self.region.rasterize()
        if not bool(m.any()):
            return None
        for i, (x, y) in enumerate(self.handles):
            xi, yi = min(max(round(x), 0), width - 1), min(max(round(y), 0), height - 1)
            if m[0, yi, xi] < 0.5:
                raise PointsError(f"points[{i}].handle ({x:g}, {y:g}) is outside the painted region, so it "
                                  "could not move: paint over it (or clear the region to let the whole image change)")
        return m

    def editable(self, mask, width: int, height: int):
        """Optimize's editable region: the painted region united with a linked MASK, or None when
        everything may change (nothing painted, or a mask of all ones such as this node's own MASK
        output with nothing painted): the official behaviour. Union, so neither is silently dropped;
        when the linked mask is this node's MASK output the union is that mask."""
        import torch
        painted = self.region_mask(width, height)
        if mask is not None:
            mask = mask if mask.ndim == 3 else mask[None]
            if not bool((mask > 0.5).any()):
                mask = None  # nothing painted (Load Image's empty placeholder, whatever its size)
            elif tuple(mask.shape[-2:]) != (height, width):  # named before the all-ones test: a mask made for
                raise PointsError(  # another image is a mistake even where it would change nothing
                    f"mask is {mask.shape[-1]}x{mask.shape[-2]} but the image is {width}x{height}")
            elif bool((mask > 0.5).all()):
                mask = None  # all may change: e.g. this node's own MASK output with nothing painted
        if mask is None or painted is None:
            return painted if mask is None else mask
        return torch.maximum((mask[:1] > 0.5).float(), painted.to(mask.device))

    def validate_for(self, width: int, height: int) -> None:
        """Raise PointsError if any point lies outside a width x height image, or the region does not fit it."""
        for i, (h, t) in enumerate(zip(self.handles, self.targets)):
            for name, (x, y) in (("handle", h), ("target", t)):
                if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                    raise PointsError(
                        f"points[{i}].{name} ({x:g}, {y:g}) is outside the {width}x{height} image "
                        f"(x must be in [0, {width - 1}], y in [0, {height - 1}])")
        self.region_mask(width, height)

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
    region = None
    if isinstance(data, dict) and "pairs" in data:
        region = _region(data.get("region"))
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
    return DragPoints(tuple(handles), tuple(targets), region)


def _number(value, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise PointsError(f"{where} must be a number in [{lo:g}, {hi:g}], got {json.dumps(value)[:40]}")
    return float(value)


def _region(data) -> Region | None:
    if data is None:
        return None
    if not isinstance(data, dict) or "size" not in data or "strokes" not in data:
        raise PointsError('points.region must be an object {"size": [width, height], "strokes": [...]}')
    size = data["size"]
    if (not isinstance(size, list) or len(size) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_SIDE for v in size)):
        raise PointsError(f"points.region.size must be [width, height] in whole pixels (1 to {MAX_SIDE}), "
                          f"got {json.dumps(size)[:60]}")
    strokes = data["strokes"]
    if not isinstance(strokes, list):
        raise PointsError("points.region.strokes must be a list of strokes")
    if len(strokes) > MAX_STROKES:
        raise PointsError(f"points.region has {len(strokes)} strokes; at most {MAX_STROKES} are supported "
                          "(clear the region and paint it in fewer strokes)")
    out, total = [], 0
    for i, s in enumerate(strokes):
        where = f"points.region.strokes[{i}]"
        if not isinstance(s, dict) or not isinstance(s.get("points"), list) or "radius" not in s:
            raise PointsError(f'{where} must be an object {{"erase": false, "radius": r, "points": [[x, y], ...]}}')
        erase = s.get("erase", False)
        if not isinstance(erase, bool):
            raise PointsError(f"{where}.erase must be true or false, got {json.dumps(erase)[:40]}")
        radius = _number(s["radius"], f"{where}.radius", 0.5, MAX_RADIUS)
        if not s["points"]:
            raise PointsError(f"{where}.points is empty: a stroke needs at least one [x, y]")
        total += len(s["points"])
        if total > MAX_STROKE_POINTS:
            raise PointsError(f"points.region has over {MAX_STROKE_POINTS} stroke points; at most "
                              f"{MAX_STROKE_POINTS} are supported")
        pts = tuple(_coord(p, f"{where}.points[{k}]") for k, p in enumerate(s["points"]))
        out.append(Stroke(erase, radius, pts))
    return Region((size[0], size[1]), tuple(out))
