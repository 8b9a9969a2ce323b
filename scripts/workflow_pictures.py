"""Screenshots of every workflow in workflows/ as the real frontend draws it, into docs/workflows/,
and the Templates browser's thumbnails beside each workflow (workflows/<name>.jpg).

    .host/venv/bin/python scripts/workflow_pictures.py               # both
    .host/venv/bin/python scripts/workflow_pictures.py --thumbnails  # only the thumbnails
Starts a ComfyUI with the pack and the test models (as the tests do) and headless Chromium.
A thumbnail is the graph alone (no menus); the toy demo's is its result, from a real run.
"""
import io
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests")]

import conftest  # noqa: E402  (ComfyUI path set-up)
import graphs  # noqa: E402
from comfy_server import ComfyServer  # noqa: E402
from conftest import ARGS, CHROMIUM  # noqa: E402
from test_widget import APP, SETTINGS  # noqa: E402


W, H = 2000, 1200  # screenshot size
THUMB_W = 768  # thumbnail width: the Templates browser shows cards of about 300 px
TOY_DEMO = "dragnoise_toy_demo"


def fit_scale(graph) -> float:
    """Zoom to fit the graph's width, at most 0.8 and at least 0.62 (below 0.6 the canvas drops its text)."""
    right = max(n["pos"][0] + n["size"][0] for n in graph["nodes"])
    bottom = max(n["pos"][1] + n["size"][1] for n in graph["nodes"])
    return round(max(0.62, min(0.8, (W - 120) / right, (H - 160) / bottom)), 3)


def show(page, graph, scale, dx, dy):
    """Load the graph and hold the view at `scale` with canvas point (0, 0) at screen (dx, dy)."""
    page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", graph)
    # the frontend restores its own view shortly after a load: insist until ours holds
    page.wait_for_function(f"""() => {{
        const c = {APP}.canvas;
        if (c.ds.scale !== {scale} || c.ds.offset[0] !== {dx} / {scale} || c.ds.offset[1] !== {dy} / {scale}) {{
            c.ds.scale = {scale}; c.ds.offset[0] = {dx} / {scale}; c.ds.offset[1] = {dy} / {scale};
            c.setDirty(true, true);
            return false;
        }}
        return true;
    }}""", polling=250, timeout=30_000)
    page.wait_for_timeout(1500)


def save_jpg(im, path):
    from PIL import Image
    im = im.convert("RGB")
    if im.width > THUMB_W:
        im = im.resize((THUMB_W, round(im.height * THUMB_W / im.width)), Image.LANCZOS)
    im.save(path, quality=85, optimize=True)
    print("wrote", path)


def graph_thumbnail(page, graph, path):
    """The graph alone: drawn away from the menus, tool bars and minimap, and cut out."""
    from PIL import Image
    scale, dx, dy, margin, title = fit_scale(graph), 150, 230, 16, 30
    right = max(n["pos"][0] + n["size"][0] for n in graph["nodes"])
    bottom = max(n["pos"][1] + n["size"][1] for n in graph["nodes"])
    top = min(n["pos"][1] for n in graph["nodes"]) - title
    left = min(n["pos"][0] for n in graph["nodes"])
    page.set_viewport_size({"width": int(right * scale) + dx + 320, "height": int(bottom * scale) + dy + 320})
    show(page, graph, scale, dx, dy)
    clip = {"x": dx + left * scale - margin, "y": dy + top * scale - margin,
            "width": (right - left) * scale + 2 * margin, "height": (bottom - top) * scale + 2 * margin}
    save_jpg(Image.open(io.BytesIO(page.screenshot(clip=clip))), path)


def toy_result_thumbnail(page, srv, graph, path):
    """The toy demo's own result: its scene with the drag drawn on it, beside what the drag made."""
    from PIL import Image, ImageDraw
    show(page, graph, fit_scale(graph), 90, 120)
    prompt = page.evaluate(f"async () => (await {APP}.graphToPrompt()).output")
    scene = next(k for k, n in prompt.items() if n["class_type"] == "DragNoiseToyScene")
    prompt["scene_out"] = {"class_type": "SaveImage", "inputs": {"images": [scene, 0], "filename_prefix": "scene"}}
    entry = srv.run(prompt, timeout=1800)
    result = next(k for k, n in prompt.items() if n["class_type"] == "SaveImage" and k != "scene_out")
    before = Image.open(io.BytesIO(srv.image(entry, "scene_out"))).convert("RGB")
    after = Image.open(io.BytesIO(srv.image(entry, result))).convert("RGB")
    pairs = json.loads(next(n for n in prompt.values() if n["class_type"] == "DragNoisePoints")["inputs"]["points"])
    pairs = pairs["pairs"] if isinstance(pairs, dict) else pairs  # {"pairs", "region"} where a region is painted
    k, gap = 2, 24  # drawn at twice the scene's size
    w, h = before.width * k, before.height * k
    im = Image.new("RGB", (2 * w + 3 * gap, h + 2 * gap), (32, 32, 36))
    im.paste(before.resize((w, h), Image.LANCZOS), (gap, gap))
    im.paste(after.resize((w, h), Image.LANCZOS), (2 * gap + w, gap))
    d = ImageDraw.Draw(im)
    for pair in pairs:  # handle (red) -> target (blue), as the point editor draws them
        (hx, hy), (tx, ty) = [(gap + x * k, gap + y * k) for x, y in (pair["handle"], pair["target"])]
        d.line([(hx, hy), (tx, ty)], fill=(255, 255, 255), width=4)
        d.ellipse([hx - 9, hy - 9, hx + 9, hy + 9], fill=(220, 40, 40), outline=(255, 255, 255), width=3)
        d.ellipse([tx - 9, ty - 9, tx + 9, ty + 9], fill=(40, 110, 230), outline=(255, 255, 255), width=3)
    save_jpg(im, path)


def thumbnails(page, srv):
    for wf in sorted((ROOT / "workflows").glob("*.json")):
        graph, path = json.loads(wf.read_text()), wf.with_suffix(".jpg")
        if wf.stem == TOY_DEMO:
            toy_result_thumbnail(page, srv, graph, path)
        else:
            graph_thumbnail(page, graph, path)


def main():
    out = ROOT / "docs" / "workflows"
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp())
    (base / "input").mkdir()
    graphs.write_test_image(base / "input" / "example.png", 512)
    (base / "user" / "default").mkdir(parents=True)
    # no missing-models dialog over the graph (the SD loaders name files the test host lacks)
    settings = {**SETTINGS, "Comfy.Workflow.ShowMissingModelsWarning": False}
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(settings))
    models = Path(os.environ.get("DRAGNOISE_HOST", ROOT / ".host")) / "test-models"
    srv = ComfyServer(conftest.COMFY, base, models)
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as pw:
            page = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS).new_page(
                viewport={"width": W, "height": H})
            page.goto(srv.url, wait_until="domcontentloaded")
            page.wait_for_function(f"() => {APP}?.graph && window.LiteGraph?.registered_node_types?.DragNoisePoints",
                                   timeout=90_000)
            for wf in [] if "--thumbnails" in sys.argv else sorted((ROOT / "workflows").glob("*.json")):
                graph = json.loads(wf.read_text())
                # the whole graph in the picture; a tall graph gets a taller picture
                scale = fit_scale(graph)
                bottom = max(n["pos"][1] + n["size"][1] for n in graph["nodes"])
                page.set_viewport_size({"width": W, "height": max(H, int(bottom * scale) + 180)})
                show(page, graph, scale, 90, 120)
                page.screenshot(path=str(out / wf.with_suffix(".png").name))
                print("wrote", out / wf.with_suffix(".png").name)
            page.set_viewport_size({"width": W, "height": H})
            thumbnails(page, srv)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
