"""The toy VAE alone: encode -> decode round trip of the benchmark's images (inputs and expected).

    python bench/toy_vae.py [--cases 60] [--seed 0]      (DRAGNOISE_TOY_WEIGHTS=dir for other weights)

Prints the round trip's PSNR over whole images (mean, min) and, per shape, the share of its
colour-segmented area that survives (accuracy.py calls a shape lost below 0.25): what the decoder
alone costs every method before any UNet runs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dragnoise_toy.comfy_env import import_comfy  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    import_comfy("cpu", stub_missing=False, extra_args=("--force-fp32",))
    from comfy.taesd.taesd import TAESD
    from bench.metrics import psnr
    from dragnoise_toy import model as M
    from dragnoise_toy.data import drag_cases, shape_mask
    taesd = TAESD()
    taesd.load_state_dict({k: v.float() for k, v in M.taesd_state_dict().items()})
    taesd.eval()
    psnrs, kept = [], []
    for case in drag_cases(a.cases, a.seed):
        for scene in (case.scene, case.expected()):
            img = scene.render()
            with torch.no_grad():
                z = taesd.taesd_encoder(torch.from_numpy(img).permute(2, 0, 1)[None])
                out = taesd.taesd_decoder(z).clamp(0, 1)[0].permute(1, 2, 0).numpy()
            psnrs.append(psnr(img, out))
            for i, s in enumerate(scene.shapes):
                kept.append((float(shape_mask(out, scene, i).sum() / shape_mask(img, scene, i).sum()), s.kind, s.r))
    share = np.array([k[0] for k in kept])
    print(f"weights: {M.WEIGHTS}")
    print(f"round trip PSNR over {len(psnrs)} images: mean {np.mean(psnrs):.1f} dB, min {np.min(psnrs):.1f} dB")
    print(f"shape area kept over {len(kept)} shapes: mean {share.mean():.2f}, below 0.5: {(share < 0.5).sum()}, "
          f"below 0.25 (lost): {(share < 0.25).sum()}")
    print("worst:", ", ".join(f"{kind} r {r:.0f} px {s:.2f}" for s, kind, r in sorted(kept)[:4]))


if __name__ == "__main__":
    main()
