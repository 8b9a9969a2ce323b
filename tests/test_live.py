"""The toy demo as a user runs it, in headless Chromium against a real ComfyUI: the editor gets its
image from a non-LoadImage node and keeps it when the graph is cached and the page reloaded, the
optimizer's live progress (tracked handles, loss, x0 preview) reaches the page while it runs, the
before/after view shows the drag's output, and newly clicked points are what the server runs.

Pinned frontend and the newest one (classic and Vue renderer); screenshots for docs/ from the pinned.
"""
import json
from pathlib import Path

import pytest
from conftest import unavailable  # in CI a frontend without the Vue renderer fails

from dragnoise_toy.model import SIZE as TOY_SIZE
from test_widget import APP, FRONTENDS, READY, SETTINGS, Screen

ROOT = Path(__file__).resolve().parents[1]
TOY = json.loads((ROOT / "workflows" / "dragnoise_toy_demo.json").read_text())
API = f"(window.comfyAPI?.api?.api ?? {APP}.api)"
BY_TYPE = f"((t) => {APP}.graph?._nodes?.find((n) => n.type === t))"
EDITOR = f"{BY_TYPE}('DragNoisePoints')?.dragnoiseEditor"
IMAGE_PROP = "dragnoise_last_image"  # web/dragnoise_points.js: the image of the node's last run

# what the page saw: finished prompts, progress messages with the handle positions the editor then
# drew (read from the editor, after its own listener ran), x0 previews that reached the optimizer
RECORD = f"""() => {{
    const byType = {BY_TYPE}, api = {API};
    const rec = (window.__dn = {{ done: 0, errors: [], progress: [], previews: 0, cached: [] }});
    api.addEventListener("execution_success", () => rec.done++);
    api.addEventListener("execution_error", (e) => {{ rec.errors.push(e.detail.exception_message); rec.done++; }});
    api.addEventListener("execution_cached", (e) => rec.cached.push(e.detail.nodes.map(String)));
    api.addEventListener("dragnoise.progress", (e) => {{
        const live = byType("DragNoisePoints").dragnoiseEditor.live;
        rec.progress.push({{ step: e.detail.step, done: e.detail.done, loss: e.detail.loss,
                             drawn: live?.trails.map((t) => t[t.length - 1]) }});
    }});
    api.addEventListener("b_preview_with_metadata", (e) => {{
        const id = String(e.detail.displayNodeId ?? e.detail.nodeId);
        if (id === String(byType("DragNoiseOptimize").id)) rec.previews++;
    }});
}}"""


def open_page(page, srv, vue):
    page.goto(srv.url, wait_until="domcontentloaded")
    page.wait_for_function(READY, timeout=90_000)
    if vue and not page.evaluate(f"""async () => {{
            const s = {APP}.extensionManager?.setting;
            if (!s) return false;
            await s.set("Comfy.VueNodes.Enabled", true);
            return s.get("Comfy.VueNodes.Enabled") === true;
        }}"""):
        unavailable("this frontend has no Comfy.VueNodes.Enabled setting")


def frame(page):
    """Scale 1, the points node at the top left (newer frontends re-fit the view after a load: insist)."""
    page.wait_for_function(f"""() => {{
        const c = {APP}.canvas, n = {BY_TYPE}("DragNoisePoints");
        if (!n?.dragnoiseEditor) return false;
        const x = 90 - n.pos[0], y = 150 - n.pos[1];  // clear of the side bar, tabs and menus
        if (c.ds.scale !== 1 || c.ds.offset[0] !== x || c.ds.offset[1] !== y) {{
            c.ds.scale = 1; c.ds.offset[0] = x; c.ds.offset[1] = y; c.setDirty(true, true);
            return false;
        }}
        return true;
    }}""", polling=250, timeout=30_000)
    page.wait_for_timeout(300)


def set_widget(page, node_type, name, value):
    page.evaluate(f"""([t, name, v]) => {{
        const w = {BY_TYPE}(t).widgets.find((w) => w.name === name);
        w.value = v; w.callback?.(v);
    }}""", [node_type, name, value])


def run(page, timeout=300_000):
    n = page.evaluate("() => window.__dn.done")
    page.evaluate(f"async () => {{ await {APP}.queuePrompt(0, 1); }}")
    page.wait_for_function(f"() => window.__dn.done > {n}", timeout=timeout)
    rec = page.evaluate("() => window.__dn")
    assert not rec["errors"], rec["errors"]
    return rec


def editor_image_width(page):
    return page.evaluate(f"() => {EDITOR}.img?.naturalWidth ?? 0")


def frontend_page(request, browser, frontend):
    """The server for `frontend` with the tests' settings, whether it draws Vue nodes, and a new page."""
    fixture, vue = FRONTENDS[frontend]
    srv = request.getfixturevalue(fixture)
    settings = Path(srv.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    return srv, vue, browser.new_page(viewport={"width": 1500, "height": 1000})


@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_toy_demo_editor_live_progress_and_rerun(request, browser, frontend):
    srv, vue, page = frontend_page(request, browser, frontend)
    try:
        open_page(page, srv, vue)
        page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", TOY)
        frame(page)
        # the scene shows before any Run, as a Load Image's file does (the pack's route renders it)
        page.wait_for_function(f"() => ({EDITOR}.img?.naturalWidth ?? 0) === {TOY_SIZE}", timeout=30_000)
        assert "/dragnoise/toy_scene?" in page.evaluate(f"() => {EDITOR}.imgURL")
        page.evaluate(RECORD)
        # 60 iterations (the demo file has 150), watched closely
        set_widget(page, "DragNoiseOptimize", "iterations", 60)
        set_widget(page, "DragNoiseOptimize", "trail_every", 3)
        set_widget(page, "DragNoiseOptimize", "preview_every", 10)

        # 1. Run: the editor shows the scene, progress arrived while it ran, the handles moved
        rec = run(page)
        page.wait_for_function(f"() => ({EDITOR}.img?.naturalWidth ?? 0) === {TOY_SIZE}", timeout=30_000)
        live = [p for p in rec["progress"] if not p["done"]]
        assert len(live) >= 2, rec["progress"]
        assert all(p["drawn"] and len(p["drawn"]) == 1 for p in rec["progress"])
        drawn = [tuple(p["drawn"][0]) for p in rec["progress"]]
        assert len(set(drawn)) >= 2, f"the drawn handle never moved: {drawn}"
        assert [p["step"] for p in live] == sorted(p["step"] for p in live)
        assert rec["previews"] >= 1, "no x0 preview reached the optimizer node"
        assert "loss" in page.locator(".dragnoise-progress").first.inner_text()
        # the frontend draws no preview of its own under the editor (it used to squeeze it to ~140 px)
        assert page.evaluate(f"() => ({BY_TYPE}('DragNoisePoints').imgs?.length ?? 0)") == 0
        assert page.locator("canvas.dragnoise-points-canvas").first.bounding_box()["height"] >= 256
        # the before/after view: the SaveImage downstream of the drag
        page.wait_for_function(f"() => !!{EDITOR}.after", timeout=30_000)
        if frontend == "pinned":
            page.wait_for_timeout(500)
            page.screenshot(path=str(ROOT / "docs" / "live_progress.png"), clip={"x": 60, "y": 100, "width": 900, "height": 720})
        page.locator(".dragnoise-points-editor button.dragnoise-after").first.click()
        assert page.evaluate(f"() => {EDITOR}.showAfter") is True
        if frontend == "pinned":
            page.locator(".dragnoise-points-editor").first.screenshot(path=str(ROOT / "docs" / "before_after.png"))
        page.locator(".dragnoise-points-editor button.dragnoise-after").first.click()  # back to the editable image

        # 2. Run again, all cached; reload the page: the editor still has its image
        points_id = page.evaluate(f"() => String({BY_TYPE}('DragNoisePoints').id)")
        rec = run(page)
        assert points_id in rec["cached"][-1], rec["cached"]
        page.wait_for_timeout(1000)  # the frontend stores the open workflow (with node properties) on its schedule
        page.reload(wait_until="domcontentloaded")
        open_page(page, srv, False)
        page.wait_for_function(f"() => ({EDITOR}?.img?.naturalWidth ?? 0) === {TOY_SIZE}", timeout=30_000)
        frame(page)
        page.evaluate(RECORD)

        # 3. New points clicked in the editor are what the server runs
        page.locator(".dragnoise-points-editor button.dragnoise-clear").first.click()
        sc = Screen(page.locator("canvas.dragnoise-points-canvas").first.bounding_box(), TOY_SIZE)
        for x, y in ((40, 70), (60, 70), (90, 30), (90, 50)):
            page.mouse.click(*sc.at(x, y))
        want = [{"handle": [40, 70], "target": [60, 70]}, {"handle": [90, 30], "target": [90, 50]}]
        set_widget(page, "DragNoiseOptimize", "iterations", 2)
        run(page)
        history = srv.get("/history")
        last = max(history.values(), key=lambda h: h["prompt"][0])["prompt"][2]
        shipped = json.loads(next(n for n in TOY["nodes"] if n["type"] == "DragNoisePoints")["widgets_values"][0])
        assert json.loads(last[points_id]["inputs"]["points"]) == {"pairs": want, "region": shipped["region"]}
    finally:
        page.close()


def test_fresh_tab_fully_cached_run_shows_the_editor_image(request, browser):
    """A second browser tab opens the demo file on a server that has already run it and presses Run:
    every node is cached, and the points editor still shows its image and the drag's output."""
    srv = request.getfixturevalue("server")
    settings = Path(srv.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    pages = [browser.new_page(viewport={"width": 1500, "height": 1000}) for _ in range(2)]  # separate contexts
    try:
        for i, page in enumerate(pages):
            open_page(page, srv, False)
            page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", TOY)
            # the scene shows at once; the node's own image (what a non-toy source needs) comes with a run
            assert page.evaluate(f"() => {BY_TYPE}('DragNoisePoints').properties.{IMAGE_PROP} ?? null") is None
            page.evaluate(RECORD)
            rec = run(page)
            if i == 1:  # the same prompt again: nothing ran
                points_id = page.evaluate(f"() => String({BY_TYPE}('DragNoisePoints').id)")
                assert points_id in rec["cached"][-1], rec["cached"]
            page.wait_for_function(f"() => !!{BY_TYPE}('DragNoisePoints').properties.{IMAGE_PROP}", timeout=30_000)
            page.wait_for_function(f"() => ({EDITOR}.img?.naturalWidth ?? 0) === {TOY_SIZE}", timeout=30_000)
            page.wait_for_function(f"() => !!{EDITOR}.after", timeout=30_000)
    finally:
        for page in pages:
            page.close()
