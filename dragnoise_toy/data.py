"""Seeded toy scenes: a few flat shapes (circle, square, triangle) in distinct colours on a flat background.

Every scene is a list of shapes with known geometry, so the ground truth of a drag is known: the
shape under the handle, translated by (target - handle). Images are float [H,W,3] in [0,1] (numpy).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

import numpy as np

KINDS = ("circle", "square", "triangle")
# saturated shape colours and flat background colours, far apart in RGB
SHAPE_COLORS = [(0.86, 0.16, 0.16), (0.16, 0.24, 0.82), (0.10, 0.62, 0.22), (0.95, 0.78, 0.10),
                (0.62, 0.18, 0.72), (0.05, 0.70, 0.75), (0.95, 0.50, 0.05)]
BACKGROUNDS = [(0.80, 0.86, 0.72), (0.92, 0.92, 0.90), (0.72, 0.80, 0.90), (0.30, 0.30, 0.34),
               (0.90, 0.82, 0.70)]


@dataclass(frozen=True)
class Shape:
    kind: str
    cx: float
    cy: float
    r: float                      # radius / half side / circumradius, pixels
    color: tuple

    def moved(self, dx, dy) -> "Shape":
        return replace(self, cx=self.cx + dx, cy=self.cy + dy)

    def mask(self, size: int, ss: int = 4) -> np.ndarray:
        """Coverage in [0,1] of each pixel (ss x ss supersampling: anti-aliased edges)."""
        o = (np.arange(size * ss) + 0.5) / ss
        yy, xx = np.meshgrid(o, o, indexing="ij")
        x, y = xx - self.cx, yy - self.cy
        if self.kind == "circle":
            m = x * x + y * y <= self.r * self.r
        elif self.kind == "square":
            m = (np.abs(x) <= self.r) & (np.abs(y) <= self.r)
        else:  # upright equilateral triangle, circumradius r
            m = (y <= self.r / 2) & (y >= -self.r + np.abs(x) * math.sqrt(3))
        return m.reshape(size, ss, size, ss).mean((1, 3))

    def bbox(self):
        return self.cx - self.r, self.cy - self.r, self.cx + self.r, self.cy + self.r


@dataclass(frozen=True)
class Scene:
    size: int
    background: tuple
    shapes: tuple

    def render(self, ss: int = 4) -> np.ndarray:
        img = np.empty((self.size, self.size, 3), np.float32)
        img[:] = self.background
        for s in self.shapes:
            m = s.mask(self.size, ss)[..., None]
            img = img * (1 - m) + np.asarray(s.color, np.float32) * m
        return img.astype(np.float32)

    def to_json(self) -> dict:
        return {"size": self.size, "background": self.background, "shapes": [asdict(s) for s in self.shapes]}


def _overlaps(a: Shape, b: Shape, gap: float) -> bool:
    return math.hypot(a.cx - b.cx, a.cy - b.cy) < a.r + b.r + gap


def _inside(s: Shape, size: int, margin: float) -> bool:
    x0, y0, x1, y1 = s.bbox()
    return x0 >= margin and y0 >= margin and x1 <= size - margin and y1 <= size - margin


def random_scene(rng: np.random.Generator, size: int = 128, n_shapes=(1, 3), r_range=None) -> Scene:
    """1..3 non-overlapping shapes, each its own colour, on one flat background."""
    r_lo, r_hi = r_range or (size * 0.09, size * 0.17)
    n = int(rng.integers(n_shapes[0], n_shapes[1] + 1))
    colors = rng.permutation(len(SHAPE_COLORS))
    shapes = []
    for i in range(n):
        for _ in range(100):
            r = float(rng.uniform(r_lo, r_hi))
            s = Shape(KINDS[int(rng.integers(len(KINDS)))], float(rng.uniform(r + 2, size - r - 2)),
                      float(rng.uniform(r + 2, size - r - 2)), r, SHAPE_COLORS[colors[i]])
            if all(not _overlaps(s, o, 4) for o in shapes):
                shapes.append(s)
                break
    return Scene(size, BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], tuple(shapes))


@dataclass
class DragCase:
    """One benchmark case: a scene, drag pairs (one or two per moved shape), an optional editable mask."""
    name: str
    scene: Scene
    pairs: list            # [{"handle": [x, y], "target": [x, y]}]
    moved: list            # indices of the dragged shapes
    drags: list            # (dx, dy) per moved shape
    mask: list | None      # editable box [x0, y0, x1, y1] in pixels, or None

    def expected(self) -> Scene:
        shapes = list(self.scene.shapes)
        for i, (dx, dy) in zip(self.moved, self.drags):
            shapes[i] = shapes[i].moved(dx, dy)
        return replace(self.scene, shapes=tuple(shapes))

    def path_box(self, margin: int = 6) -> list:
        """The box around the moved shapes before and after, `margin` px wider: what a user would paint."""
        xs, ys = [], []
        for i, (dx, dy) in zip(self.moved, self.drags):
            x0, y0, x1, y1 = self.scene.shapes[i].bbox()
            xs += [x0, x1, x0 + dx, x1 + dx]
            ys += [y0, y1, y0 + dy, y1 + dy]
        size = self.scene.size
        return [max(min(xs) - margin, 0), max(min(ys) - margin, 0), min(max(xs) + margin, size), min(max(ys) + margin, size)]

    def mask_array(self) -> np.ndarray | None:
        if self.mask is None:
            return None
        m = np.zeros((self.scene.size, self.scene.size), np.float32)
        x0, y0, x1, y1 = (int(round(v)) for v in self.mask)
        m[max(y0, 0):y1, max(x0, 0):x1] = 1
        return m

    def points_json(self) -> str:
        return json.dumps(self.pairs)


def _drag_for(rng, scene: Scene, i: int, others: list, length) -> tuple | None:
    """A drag vector for shape i that keeps it inside the image and clear of the other shapes."""
    s = scene.shapes[i]
    for _ in range(200):
        ang = float(rng.uniform(0, 2 * math.pi))
        ln = float(rng.uniform(*length))
        dx, dy = round(ln * math.cos(ang)), round(ln * math.sin(ang))
        m = s.moved(dx, dy)
        if _inside(m, scene.size, 2) and all(not _overlaps(m, o, 3) for o in others):
            return dx, dy
    return None


def drag_cases(n: int = 60, seed: int = 0, size: int = 128) -> list[DragCase]:
    """A fixed set of n cases: 60% one pair, 25% two pairs on two shapes, 15% two pairs on one shape;
    every third case carries an editable mask (a box around the shape's path)."""
    rng = np.random.default_rng(seed)
    cases = []
    lo, hi = size * 0.12, size * 0.25
    while len(cases) < n:
        k = len(cases)
        kind = "single" if k % 20 < 12 else "two_shapes" if k % 20 < 17 else "two_points"
        scene = random_scene(rng, size, (2 if kind == "two_shapes" else 1, 3))
        if kind == "two_shapes" and len(scene.shapes) < 2:
            continue
        moved = [0, 1] if kind == "two_shapes" else [0]
        drags, ok = [], True
        for j, i in enumerate(moved):
            others = [o for t, o in enumerate(scene.shapes) if t not in moved]
            others += [scene.shapes[m].moved(*d) for m, d in zip(moved[:j], drags)]
            others += [scene.shapes[m] for m in moved[j + 1:]]
            d = _drag_for(rng, scene, i, others, (lo, hi))
            if d is None:
                ok = False
                break
            drags.append(d)
        if not ok:
            continue
        pairs = []
        for i, (dx, dy) in zip(moved, drags):
            s = scene.shapes[i]
            offsets = [(0.0, 0.0)] if kind != "two_points" else [(-0.4, 0.0), (0.4, 0.0)]
            for ox, oy in offsets:
                hx, hy = round(s.cx + ox * s.r), round(s.cy + oy * s.r)
                pairs.append({"handle": [hx, hy], "target": [hx + dx, hy + dy]})
        case = DragCase(f"{k:02d}_{kind}", scene, pairs, moved, drags, None)
        if k % 3 == 2:
            case = replace(case, name=case.name + "_mask", mask=case.path_box())
        cases.append(case)
    return cases


def shape_mask(image: np.ndarray, scene: Scene, index: int, tol: float = 0.3) -> np.ndarray:
    """Pixels of `image` that belong to shape `index` of `scene` by colour: nearer its colour than the
    background's or any other shape's, and within `tol` (max abs) of it. Works on decoded images."""
    img = np.asarray(image, np.float32)
    palette = [scene.background] + [s.color for s in scene.shapes]
    d = np.stack([np.abs(img - np.asarray(c, np.float32)).max(-1) for c in palette])
    nearest = d.argmin(0)
    return ((nearest == index + 1) & (d[index + 1] <= tol)).astype(np.float32)
