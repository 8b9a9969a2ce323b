"""docs/mask_keep.png: one toy drag with a painted region, without and with keeping, from the nodes' output.

    .host/venv/bin/python scripts/mask_keep_picture.py [--out docs/mask_keep.png]

Starts a ComfyUI with the pack (as the tests do), runs workflows/dragnoise_real_photo_mask.json on the
bundled toy model (scripts/make_workflows.py's on_the_toy) for case 05 of the accuracy benchmark, with its
box painted as the mask editor paints it (alpha 0 in the Load Image PNG), and saves three outputs of the
one optimization: keep_outside_mask off (official), the latent keeping alone (VAE Decode), and the shipped
workflow (latent keeping + Image Composite Masked). Rows: the whole image, a zoomed crop at the region's
corner, the difference from the input (x8). Under each: PSNR outside the region against the input.
"""
import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts"), str(ROOT)]

import conftest  # noqa: E402  (ComfyUI path set-up)
import make_workflows as mw  # noqa: E402
from comfy_server import ComfyServer  # noqa: E402

CASE, CROP, ZOOM, FULL = 5, 72, 5, 1.5  # case 05 (a triangle dragged left, a square outside the box)


def psnr_outside(a, b, outside) -> str:
    mse = float(((a.astype(np.float64) - b) ** 2).mean(-1)[outside].mean()) / 255 ** 2
    return "identical to the input" if mse == 0 else f"{10 * np.log10(1 / mse):.1f} dB"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "docs" / "mask_keep.png"))
    a = ap.parse_args()
    from dragnoise_toy.data import drag_cases
    from dragnoise_toy.model import SIZE
    case = drag_cases(60, 0, SIZE)[CASE]
    x0, y0, x1, y1 = (int(round(v)) for v in case.mask or case.path_box())
    rgb = (case.scene.render() * 255).round().astype(np.uint8)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[y0:y1, x0:x1] = 0  # Load Image's MASK = 1 - alpha: 1 (may change) in the box
    base = Path(tempfile.mkdtemp())
    (base / "input").mkdir()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(base / "input" / "keep.png")
    wf = json.loads((ROOT / "workflows" / "dragnoise_real_photo_mask.json").read_text())
    p = mw.on_the_toy(mw.api_prompt(wf), "keep.png", json.dumps(case.pairs))
    kind = {n["class_type"]: k for k, n in p.items()}
    patch, ks, dec, save = kind["DragNoisePropagation"], kind["KSamplerAdvanced"], kind["VAEDecode"], kind["SaveImage"]
    # the same optimization, propagated without keeping (official), and the kept latent's plain decode
    p["patch_off"] = {**p[patch], "inputs": {**p[patch]["inputs"], "keep_outside_mask": False}}
    p["sample_off"] = {**p[ks], "inputs": {**p[ks]["inputs"], "model": ["patch_off", 0]}}
    p["decode_off"] = {**p[dec], "inputs": {**p[dec]["inputs"], "samples": ["sample_off", 0]}}
    p["save_off"] = {"class_type": "SaveImage", "inputs": {"images": ["decode_off", 0], "filename_prefix": "off"}}
    p["save_latent"] = {"class_type": "SaveImage", "inputs": {"images": [dec, 0], "filename_prefix": "latent"}}
    models = Path(os.environ.get("DRAGNOISE_HOST", ROOT / ".host")) / "test-models"
    srv = ComfyServer(conftest.COMFY, base, models)
    try:
        entry = srv.run(p, timeout=3600)  # a shared CPU can take half an hour
        load = lambda node: np.asarray(Image.open(io.BytesIO(srv.image(entry, node))).convert("RGB"))  # noqa: E731
        outs = [load("save_off"), load("save_latent"), load(save)]
    finally:
        srv.stop()
    outside = np.ones(rgb.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    titles = ["input, painted region, drag", "keep_outside_mask off (official)", "keep_outside_mask on, VAE Decode",
              "+ Image Composite Masked (shipped)"]
    labels = ["PSNR outside the region:"] + [psnr_outside(rgb, o, outside) for o in outs]
    cx, cy = min(max(x1 - CROP // 2, 0), SIZE - CROP), min(max(y0 - CROP // 2, 0), SIZE - CROP)  # the box's top-right corner
    fw, cw, pad, text = int(SIZE * FULL), CROP * ZOOM, 12, 22
    col = max(fw, cw)
    canvas = Image.new("RGB", (4 * col + 5 * pad, text + fw + text + cw + text + fw + 2 * text + pad), "white")
    d = ImageDraw.Draw(canvas)
    for i, img in enumerate([rgb] + outs):
        x = pad + i * (col + pad)
        d.text((x, 4), titles[i], fill="black")
        full = Image.fromarray(img).resize((fw, fw), Image.NEAREST)
        fd = ImageDraw.Draw(full)
        if i == 0:  # the region and the drag, on the input only (a line on a result would hide its seam)
            fd.rectangle([x0 * FULL, y0 * FULL, x1 * FULL, y1 * FULL], outline=(20, 20, 20), width=2)
            (hx, hy), (tx, ty) = case.pairs[0]["handle"], case.pairs[0]["target"]
            fd.line([hx * FULL, hy * FULL, tx * FULL, ty * FULL], fill=(220, 0, 0), width=3)
            fd.ellipse([hx * FULL - 6, hy * FULL - 6, hx * FULL + 6, hy * FULL + 6], fill=(220, 0, 0))
            fd.ellipse([tx * FULL - 6, ty * FULL - 6, tx * FULL + 6, ty * FULL + 6], fill=(40, 110, 230))
        fd.rectangle([cx * FULL, cy * FULL, (cx + CROP) * FULL, (cy + CROP) * FULL], outline=(0, 160, 0), width=2)
        canvas.paste(full, (x, text))
        y = text + fw + text
        d.text((x, y - 18), "zoomed (green square)" + (", region edge dotted" if i == 0 else ""), fill="black")
        crop = Image.fromarray(img[cy:cy + CROP, cx:cx + CROP]).resize((cw, cw), Image.NEAREST)
        cd = ImageDraw.Draw(crop)
        ex, ey = (x1 - cx) * ZOOM, (y0 - cy) * ZOOM
        for k in range(0, cw, 10) if i == 0 else ():  # the region's top and right edges, dotted, on the input
            if k < ex:
                cd.rectangle([k, ey - 1, k + 2, ey + 1], fill=(20, 20, 20))
            if k > ey:
                cd.rectangle([ex - 1, k, ex + 1, k + 2], fill=(20, 20, 20))
        canvas.paste(crop, (x, y))
        y += cw + text
        d.text((x, y - 18), "difference from the input, x8", fill="black")
        diff = np.clip(np.abs(img.astype(int) - rgb).max(-1) * 8, 0, 255).astype(np.uint8)
        canvas.paste(Image.fromarray(255 - diff).convert("RGB").resize((fw, fw), Image.NEAREST), (x, y))
        d.text((x, y + fw + 6), labels[i], fill="black")
    canvas.save(a.out)
    print("wrote", a.out, dict(zip(titles[1:], labels[1:])))


if __name__ == "__main__":
    main()
