"""Every shipped workflow opens readable (at a zoom where ComfyUI draws titles and widgets) with its main
path (the drag, down to Save Image) in view, no two nodes overlapping (title bars included) and a points
editor large enough to click in, by the boxes the newest frontend reports, classic and Vue renderer."""
import itertools
import json
import sys
from pathlib import Path

import pytest
from conftest import unavailable  # in CI a frontend without the Vue renderer fails

from test_widget import APP, READY, SETTINGS

from test_workflows import WORKFLOWS, for_this_comfyui

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from make_workflows import main_path  # noqa: E402  (the drag and what follows it)

ROOT = Path(__file__).resolve().parents[1]
MIN_EDITOR = 256  # graph units (px at zoom 1)
WINDOW = {"width": 1600, "height": 900}  # the window scripts/make_workflows.py fits each graph into

# node boxes in graph units: the classic canvas's own bounds (title bar included), or the Vue
# renderer's DOM rects (header included) divided by the zoom
BOXES = f"""async (vue) => {{
    const app = {APP}, ds = app.canvas.ds;
    const name = (n) => `${{n.id}} ${{n.title ?? n.type}}`;
    const editor = document.querySelector("canvas.dragnoise-points-canvas")?.getBoundingClientRect();
    const out = {{ scale: ds.scale, offset: [...ds.offset], screen: {{}}, editor: editor && [editor.width / ds.scale, editor.height / ds.scale], boxes: {{}},
                  // what hides titles and widgets: the canvas's low-quality mode, 1.32's Vue LOD class
                  low_quality: app.canvas.low_quality, lod: !!document.querySelector(".isLOD"),
                  // the frontend's own rule for it (LGraphCanvas.updateLowQualityThreshold), default setting 8
                  threshold: 8 / (LiteGraph.NODE_TEXT_SIZE * Math.sqrt(window.devicePixelRatio || 1)) }};
    for (const n of app.graph._nodes) {{
        if (vue) {{
            const r = document.querySelector(`.lg-node[data-node-id="${{n.id}}"]`)?.getBoundingClientRect();
            out.boxes[name(n)] = r && [r.x / ds.scale, r.y / ds.scale, r.width / ds.scale, r.height / ds.scale];
            out.screen[name(n)] = r && [r.x, r.y, r.width, r.height];
        }} else {{
            const b = n.getBounding ? Array.from(n.getBounding()) : [...n.boundingRect];
            out.boxes[name(n)] = b;
            const c = app.canvas.canvas.getBoundingClientRect();  // graph -> page pixels
            out.screen[name(n)] = [c.x + (b[0] + ds.offset[0]) * ds.scale, c.y + (b[1] + ds.offset[1]) * ds.scale,
                                   b[2] * ds.scale, b[3] * ds.scale];
        }}
    }}
    return out;
}}"""


@pytest.fixture(scope="module")
def page(browser, server_latest):
    settings = Path(server_latest.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    p = browser.new_page(viewport=WINDOW)
    p.goto(server_latest.url, wait_until="domcontentloaded")
    p.wait_for_function(READY, timeout=90_000)
    yield p
    p.close()


def overlaps(boxes: dict) -> list[str]:
    bad = []
    for (a, ra), (b, rb) in itertools.combinations(boxes.items(), 2):
        w = min(ra[0] + ra[2], rb[0] + rb[2]) - max(ra[0], rb[0])
        h = min(ra[1] + ra[3], rb[1] + rb[3]) - max(ra[1], rb[1])
        if w > 0 and h > 0:
            bad.append(f"{a} / {b} ({w:.0f}x{h:.0f})")
    return bad


def out_of_view(screen: dict) -> list[str]:
    """Nodes (page pixels) not wholly inside the window: the user would have to pan to see them."""
    return [f"{k} at {[round(v) for v in r]} is outside the {WINDOW['width']}x{WINDOW['height']} window"
            for k, r in screen.items()
            if r[0] < 0 or r[1] < 0 or r[0] + r[2] > WINDOW["width"] or r[1] + r[3] > WINDOW["height"]]


@pytest.mark.parametrize("renderer", ["classic", "vue"])
def test_workflows_open_readable_without_overlaps(page, server_latest, renderer):
    vue = renderer == "vue"
    if not page.evaluate(f"""async (vue) => {{
            const s = {APP}.extensionManager?.setting;
            if (!s) return false;
            await s.set("Comfy.VueNodes.Enabled", vue);
            return s.get("Comfy.VueNodes.Enabled") === vue;
        }}""", vue):
        unavailable("this frontend has no Comfy.VueNodes.Enabled setting")
    problems = []
    info = server_latest.get("/object_info")
    for path in (for_this_comfyui(p, info) for p in WORKFLOWS):  # as a user of this ComfyUI opens them
        wf = json.loads(path.read_text())
        ds = wf["extra"]["ds"]
        # as the Templates browser opens it (frontends 1.49+ then fit the whole graph to the window)
        page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf, true, true, null, {{openSource: 'template'}}); }}",
                      wf)
        n = len(wf["nodes"])
        if vue:  # the DOM nodes have rendered
            page.wait_for_function(f"() => document.querySelectorAll('.lg-node[data-node-id]').length === {n}",
                                   timeout=30_000)
        try:  # the readable view is put back a frame or more after a template's fit (later under load)
            page.wait_for_function(f"() => {APP}.canvas.ds.scale >= 8 / (LiteGraph.NODE_TEXT_SIZE * "
                                   "Math.sqrt(window.devicePixelRatio || 1))", timeout=10_000)
        except Exception:
            pass  # the assert below says at which zoom it opened
        page.wait_for_timeout(800)  # sizes settle (DOM widgets, Vue layout)
        got = page.evaluate(BOXES, vue)
        assert len(got["boxes"]) == n and all(got["boxes"].values()), got
        problems += [f"{path.name}: {o}" for o in overlaps(got["boxes"])]
        if abs(got["scale"] - ds["scale"]) > 1e-6 or got["offset"] != ds["offset"]:
            problems.append(f"{path.name}: opened at {got['scale']} {got['offset']}, not its stored view {ds}")
        if got["low_quality"] or got["lod"] or got["scale"] < got["threshold"]:
            problems.append(f"{path.name}: opens at zoom {got['scale']}, where ComfyUI hides titles and widgets "
                            f"(below {got['threshold']:.2f})")
        main = main_path(wf)  # keys are "id title"
        problems += [f"{path.name}: {o}" for o in out_of_view(
            {k: v for k, v in got["screen"].items() if int(k.split()[0]) in main})]
        w, h = got["editor"]
        if min(w, h) < MIN_EDITOR:
            problems.append(f"{path.name}: the points editor is {w:.0f}x{h:.0f}, under {MIN_EDITOR} px")
    assert not problems, "\n".join(problems)
