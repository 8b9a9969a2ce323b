"""Where a toy drag gets lost: the oracle bottleneck on DDIM-inverted latents vs on fresh noise.

    python bench/toy_probe.py [--cases 6] [--seed 0]      (DRAGNOISE_TOY_WEIGHTS=dir for other weights)

Per case: the statistics of the inverted latent's noise part (eps = (x_t - z) / sigma: std, and its
cosine with the clean latent: DDIM inversion of flat toy images is not white noise), then the
oracle (the expected image's own bottleneck, injected from the editing step on) once with the
skips from a fresh-noise sample of the input (the distribution swap training sees; noise of the
expected image's sample correlated rho with it) and once from the inversions, as accuracy.py.
"Along" is the centroid shift along the drag as a share of the drag; plain = no injection.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.comfy_env import import_comfy  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    import_comfy("cpu")
    from bench.accuracy import Toy, score_case
    from dragnoise_toy.data import drag_cases
    from dragnoise_toy.model import SIZE
    toy = Toy(50, 35)
    s = toy.sigma
    g = torch.Generator().manual_seed(a.seed)
    for case in drag_cases(a.cases, a.seed, SIZE):  # the size the toy was trained at
        img, exp = case.scene.render(), case.expected().render()
        z, z2 = toy.encode(img), toy.encode(exp)
        xt = toy.invert(z)
        eps_inv = (xt - z) / s
        cos = float(F.cosine_similarity((eps_inv - eps_inv.mean()).flatten(), (z - z.mean()).flatten(), 0))
        print(f"{case.name}: inverted noise std {float(eps_inv.std()):.2f}, cosine with the latent {cos:.2f}")
        eps = torch.randn(z.shape, generator=g)
        plain = score_case(case, img, toy.decode(toy.sample(z + s * eps)))
        for rho in (1.0, 0.75):
            eps2 = rho * eps + (1 - rho * rho) ** 0.5 * torch.randn(z.shape, generator=g)
            b_or = toy.record(z2 + s * eps2).bottleneck
            r = score_case(case, img, toy.decode(toy.sample(z + s * eps, toy.injected(b_or))))
            print(f"  fresh noise, rho {rho}: oracle along {100 * r['shift_along']:.0f}% "
                  f"(plain {100 * plain['shift_along']:.0f}%), PSNR outside {r['psnr_outside']:.1f} dB")
        r = score_case(case, img, toy.decode(toy.sample(xt, toy.injected(toy.record(toy.invert(z2)).bottleneck))))
        print(f"  inverted latents: oracle along {100 * r['shift_along']:.0f}%", flush=True)


if __name__ == "__main__":
    main()
