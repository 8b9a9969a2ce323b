"""DragNoise-optimized bottlenecks on training drags, for the toy's --dn-pool training (train.dn_pool_loss).

    python bench/dn_pool.py --seed 1000 --time-budget 1800 --out /tmp/dn_pool_a.pt

Each training drag is a seeded toy scene with one shape translated (seeds far from the benchmark's
drag_cases), run through the benchmark's own DragNoise path at the demo settings (inversion to the
editing step, optimize_bottleneck as the node runs it; every third drag with an editable box
around the shape's path, as the benchmark). Saved per drag: the input's latent, the dragged
scene's latent, the inverted latent and the optimized bottleneck (and the starting one).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.comfy_env import import_comfy  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="drags (or as many as --time-budget allows)")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--time-budget", type=float, default=1e9, help="seconds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    import_comfy("cpu", extra_args=("--force-fp32",))
    torch.set_num_threads(a.threads)
    from bench.accuracy import Toy, optimize_dragnoise
    from dragnoise import DragConfig
    from dragnoise_toy.data import one_shape_drags
    from dragnoise_toy.model import DEMO_INVERSION_STEPS, DEMO_ITERATIONS, DEMO_LR, DEMO_R1, SIZE
    toy = Toy(50, DEMO_INVERSION_STEPS)
    config = DragConfig(iterations=DEMO_ITERATIONS, lr=DEMO_LR, r1=DEMO_R1)
    grid = (SIZE // 2, SIZE // 2)
    rec = {k: [] for k in ("z0", "z1", "xt", "b0", "b")}
    t0, its = time.perf_counter(), []
    for scene, moved, i, d, handle, target in one_shape_drags(a.seed, SIZE):
        if len(its) >= a.n or time.perf_counter() - t0 >= a.time_budget:
            break
        s = scene.shapes[i]
        z0, z1 = toy.encode(scene.render(ss=2)), toy.encode(moved.render(ss=2))
        xt = toy.invert(z0)
        mask = None
        if len(its) % 3 == 2:
            xs = [s.cx - s.r, s.cx + s.r, s.cx - s.r + d[0], s.cx + s.r + d[0]]
            ys = [s.cy - s.r, s.cy + s.r, s.cy - s.r + d[1], s.cy + s.r + d[1]]
            mask = np.zeros((SIZE, SIZE), np.float32)
            mask[max(int(min(ys)) - 6, 0):int(max(ys)) + 6, max(int(min(xs)) - 6, 0):int(max(xs)) + 6] = 1
        r, b0 = optimize_dragnoise(toy, xt, [handle], [target], config, mask, grid)
        for k, v in zip(rec, (z0, z1, xt, b0, r.bottleneck)):
            rec[k].append(v.detach().float()[0].clone())
        its.append(r.iterations)
        print(f"{len(its)} drags, {time.perf_counter() - t0:.0f} s, {r.iterations} iterations", flush=True)
    torch.save({**{k: torch.stack(v) for k, v in rec.items()}, "sigma": toy.sigma, "iterations": its,
                "command": " ".join(["bench/dn_pool.py"] + (argv if argv is not None else sys.argv[1:]))}, a.out)


if __name__ == "__main__":
    main()
