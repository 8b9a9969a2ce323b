"""Screenshots of every workflow in workflows/ as the real frontend draws it, into docs/workflows/.

    .host/venv/bin/python scripts/workflow_pictures.py
Starts a ComfyUI with the pack and the test models (as the tests do) and headless Chromium.
"""
import json
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


def main():
    out = ROOT / "docs" / "workflows"
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp())
    (base / "input").mkdir()
    graphs.write_test_image(base / "input" / "example.png", 512)
    (base / "user" / "default").mkdir(parents=True)
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(SETTINGS))
    models = ROOT / ".host" / "test-models"
    srv = ComfyServer(conftest.COMFY, base, models)
    from playwright.sync_api import sync_playwright
    try:
        with sync_playwright() as pw:
            page = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS).new_page(
                viewport={"width": W, "height": H})
            page.goto(srv.url, wait_until="domcontentloaded")
            page.wait_for_function(f"() => {APP}?.graph && window.LiteGraph?.registered_node_types?.DragNoisePoints",
                                   timeout=90_000)
            for wf in sorted((ROOT / "workflows").glob("*.json")):
                graph = json.loads(wf.read_text())
                # the whole graph in the picture: zoom to fit its width, at most 0.8 and at least 0.62
                # (below 0.6 the canvas drops its text); a tall graph gets a taller picture
                right = max(n["pos"][0] + n["size"][0] for n in graph["nodes"])
                bottom = max(n["pos"][1] + n["size"][1] for n in graph["nodes"])
                scale = round(max(0.62, min(0.8, (W - 120) / right, (H - 160) / bottom)), 3)
                page.set_viewport_size({"width": W, "height": max(H, int(bottom * scale) + 180)})
                page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", graph)
                # the frontend restores its own view shortly after a load: insist until ours holds
                page.wait_for_function(f"""() => {{
                    const c = {APP}.canvas;
                    if (c.ds.scale !== {scale} || c.ds.offset[0] !== 90 / {scale} || c.ds.offset[1] !== 120 / {scale}) {{
                        c.ds.scale = {scale}; c.ds.offset[0] = 90 / {scale}; c.ds.offset[1] = 120 / {scale};
                        c.setDirty(true, true);
                        return false;
                    }}
                    return true;
                }}""", polling=250, timeout=30_000)
                page.wait_for_timeout(1500)
                page.screenshot(path=str(out / wf.with_suffix(".png").name))
                print("wrote", out / wf.with_suffix(".png").name)
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
