"""Keeping in pixels: the shipped masked workflow saves the input's own pixels outside the painted region.

workflows/dragnoise_real_photo_mask.json is converted to an API prompt as written (its links and widget
values), its SD checkpoint swapped for the bundled toy model, and run by the real ComfyUI server on a toy
scene whose region is painted the way the mask editor paints it (alpha 0 in a Load Image PNG).
"""
import io
import json
import math
import sys
from pathlib import Path

import numpy as np

from dragnoise_toy.model import DEMO_POINTS as POINTS, DEMO_SCENE, SIZE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import make_workflows as mw  # noqa: E402


def test_masked_workflow_saves_the_input_pixels_outside_the_region(server):
    from PIL import Image
    from bench.metrics import score_drag
    from dragnoise_toy.data import DragCase, random_scene, shape_mask
    scene = random_scene(np.random.default_rng(DEMO_SCENE), SIZE)
    rgb = (scene.render() * 255).round().astype(np.uint8)
    drag = [POINTS[0]["target"][i] - POINTS[0]["handle"][i] for i in (0, 1)]
    x0, y0, x1, y1 = (int(round(v)) for v in DragCase("keep", scene, POINTS, [0], [drag], None).path_box())
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[y0:y1, x0:x1] = 0  # the mask editor erases alpha where it paints: Load Image's MASK is 1 there
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(Path(server.base) / "input" / "dragnoise_keep.png")
    wf = json.loads((ROOT / "workflows" / "dragnoise_real_photo_mask.json").read_text())
    prompt = mw.on_the_toy(mw.api_prompt(wf), "dragnoise_keep.png", iterations=60)
    save = next(k for k, n in prompt.items() if n["class_type"] == "SaveImage")
    entry = server.run(prompt, timeout=600)
    saved = np.asarray(Image.open(io.BytesIO(server.image(entry, save))).convert("RGB"))
    region = np.zeros((SIZE, SIZE), bool)
    region[y0:y1, x0:x1] = True
    outside = ~region
    assert np.array_equal(saved[outside], rgb[outside]), \
        f"{int((saved[outside] != rgb[outside]).any(-1).sum())} pixels outside the region differ from the input"
    # inside, beyond the feather, the drag's own output: the disc moved right
    before, after = rgb.astype(np.float32) / 255, saved.astype(np.float32) / 255
    s = score_drag(shape_mask(before, scene, 0), shape_mask(after, scene, 0), drag, before, after)
    print(f"outside the region: identical; disc shift ({s.shift[0]:.1f}, {s.shift[1]:.1f}) px for {drag}")
    assert s.shift[0] > 0.15 * drag[0] and abs(s.shift[1]) < 0.2 * math.hypot(*drag), \
        f"with pixel keeping the disc moved only ({s.shift[0]:.1f}, {s.shift[1]:.1f}) px for {drag}"
    # the feather: the composite's mask is 1 from KEEP_FEATHER px inside the region's edge, so there the saved
    # image is not the input (a composite that pasted the input everywhere would pass the first assertion)
    f = mw.KEEP_FEATHER
    core = np.zeros_like(region)
    core[y0 + f:y1 - f, x0 + f:x1 - f] = True
    assert (np.abs(saved[core].astype(int) - rgb[core]).max(-1) > 8).mean() > 0.05, "the region came back unchanged"
