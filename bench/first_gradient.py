"""Where DragNoise's first step points, against the oracle's bottleneck change (the --align probe).

    DRAGNOISE_TOY_WEIGHTS=dir python bench/first_gradient.py [--cases 8]

Per benchmark case (seed 0, demo settings): g, the gradient of the alignment loss (patch radius
DEMO_R1, the feature upsampled to the supervision grid as the node does) on the input's bottleneck
at the editing step; D, the oracle's change (the expected image's bottleneck minus the input's).
Prints cos(-g, D), cos(-sign g, D) (Adam's first step is lr * -sign g), and the share of |D| and of
|g| on the quarter of the bottleneck cells where D is largest (are they in the same place?).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.comfy_env import import_comfy  # noqa: E402


def cos(a, b) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=8)
    a = ap.parse_args(argv)
    import_comfy("cpu", extra_args=("--force-fp32",))
    torch.set_num_threads(1)
    from bench.accuracy import Toy, oracle
    from dragnoise import parse_points
    from dragnoise.optimize import alignment_loss
    from dragnoise_toy.data import drag_cases
    from dragnoise_toy.model import DEMO_INVERSION_STEPS, DEMO_R1, SIZE
    toy = Toy(50, DEMO_INVERSION_STEPS)
    grid = (SIZE // 2, SIZE // 2)
    rows = []
    for case in drag_cases(a.cases, 0, SIZE):
        z = toy.encode(case.scene.render())
        xt = toy.invert(z)
        b0, b_or, _ = oracle(toy, xt, z, toy.encode(case.expected().render()))
        handles, targets = (torch.tensor(v) for v in parse_points(case.pairs).scaled(0.5, 0.5))  # as the node
        replay = toy.record(xt)
        with torch.inference_mode(False), torch.enable_grad(), replay:
            b = replay.bottleneck.detach().clone().requires_grad_(True)
            f = F.interpolate(replay.decode(b), size=grid, mode="bilinear", align_corners=False)
            g, = torch.autograd.grad(alignment_loss(f, handles, targets, DEMO_R1), b)
        d = b_or - b0
        cells, gc = d.abs().sum(1).flatten(), g.abs().sum(1).flatten()
        top = cells >= cells.quantile(0.75)
        rows.append((cos(-g, d), cos(-g.sign(), d), float(cells[top].sum() / cells.sum()),
                     float(gc[top].sum() / gc.sum())))
        print(f"{case.name:24s} cos(-g, D) {rows[-1][0]:+.3f}  cos(-sign g, D) {rows[-1][1]:+.3f}  "
              f"top-quarter share of |D| {rows[-1][2]:.2f}, of |g| {rows[-1][3]:.2f}", flush=True)
    print("mean" + " " * 20 + "  ".join(f"{statistics.fmean(r[i] for r in rows):+.3f}" for i in range(4)))


if __name__ == "__main__":
    main()
