"""The DragNoisePoints canvas editor in a real browser against a real ComfyUI.

Runs against the frontend ComfyUI 0.3.75 pins (installed with it) and against the newest
comfyui-frontend-package that scripts/setup_host.sh puts in .host/frontend-latest, the latter
with the classic canvas renderer and with the Vue node renderer ("Comfy.VueNodes.Enabled").
Clicks land on pixel centres of the 128x128 test image, drawn at a non-default graph zoom, and
the points are checked as exact image pixels in the saved workflow and in the API prompt.
"""
import json
import math
from pathlib import Path

import pytest
from conftest import unavailable  # in CI a frontend without the Vue renderer fails

import graphs

ROOT = Path(__file__).resolve().parents[1]
OTHER_IMAGE = "dragnoise_other_size.png"
N = graphs.SIZE


FRONTENDS = {"pinned": ("server", False), "latest": ("server_latest", False), "latest-vue": ("server_latest", True)}


def workflow(linked: bool = True) -> dict:
    wf = {
        "last_node_id": 2, "last_link_id": 1, "version": 0.4, "groups": [], "config": {}, "extra": {"ds": ZOOM},
        "nodes": [
            {"id": 1, "type": "LoadImage", "pos": [0, 0], "size": [240, 320], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "properties": {}, "widgets_values": [graphs.IMAGE, "image"],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}, {"name": "MASK", "type": "MASK", "links": None}]},
            {"id": 2, "type": "DragNoisePoints", "pos": [300, 0], "size": [330, 380], "flags": {}, "order": 1, "mode": 0,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
             "outputs": [{"name": "drag_points", "type": "DRAGNOISE_POINTS", "links": None}],
             "properties": {}, "widgets_values": ["[]"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"]],
    }
    if not linked:  # the points node alone: its image can only come from its own run
        wf["nodes"] = wf["nodes"][1:]
        wf["nodes"][0]["inputs"][0]["link"] = None
        wf["links"] = []
    return wf


ZOOM = {"scale": 1.7, "offset": [-180, 120]}
APP = "(window.comfyAPI?.app?.app ?? window.app)"
# Started: the pack's nodes registered and the frontend's own first workflow open. Frontends 1.49+ open
# it (the default graph) only after the node types are registered, and would replace a graph a test
# loaded in between; 1.32 had opened it before.
READY = (f"() => {APP}?.graph && window.LiteGraph?.registered_node_types?.DragNoisePoints"
         f" && {APP}.extensionManager?.workflow?.activeWorkflow")


SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.VueNodes.Enabled": False}


def open_editor(page, srv, vue: bool, linked: bool = True):
    # no first-run templates dialog over the canvas
    settings = Path(srv.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    page.goto(srv.url, wait_until="domcontentloaded")
    page.wait_for_function(READY, timeout=90_000)
    if vue:
        has = page.evaluate(f"""async () => {{
            const s = {APP}.extensionManager?.setting;
            if (!s) return false;
            await s.set("Comfy.VueNodes.Enabled", true);
            return s.get("Comfy.VueNodes.Enabled") === true;
        }}""")
        if not has:
            unavailable("this frontend has no Comfy.VueNodes.Enabled setting")
    page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", workflow(linked))
    # a non-default zoom and pan: the editor must map clicks through it
    # (newer frontends restore/fit the view asynchronously after a load: insist until it sticks)
    page.wait_for_function(f"""() => {{
        const c = {APP}.canvas, [x, y] = {ZOOM["offset"]};
        if (c.ds.scale !== {ZOOM["scale"]} || c.ds.offset[0] !== x || c.ds.offset[1] !== y) {{
            c.ds.scale = {ZOOM["scale"]}; c.ds.offset[0] = x; c.ds.offset[1] = y; c.setDirty(true, true);
            return false;
        }}
        const e = {APP}.graph.getNodeById(2)?.dragnoiseEditor;
        return e && (e.img?.naturalWidth === {N} || !{str(linked).lower()}) && e.canvas.getBoundingClientRect().width > 400;
    }}""", polling=250, timeout=30_000)
    page.wait_for_timeout(300)  # let the DOM-widget positions settle after the zoom
    return page.locator('canvas.dragnoise-points-canvas[data-node-id="2"]')


class Screen:
    """Image pixel -> the screen point at its centre, from the editor canvas rect (contain fit)."""

    def __init__(self, box, n=N):  # n: the image's size in pixels
        self.box = box
        self.s = min(box["width"] / n, box["height"] / n)
        self.ox = box["x"] + (box["width"] - n * self.s) / 2
        self.oy = box["y"] + (box["height"] - n * self.s) / 2

    def at(self, x, y):
        return self.ox + (x + 0.5) * self.s, self.oy + (y + 0.5) * self.s

    def pixel(self, sx, sy):  # what the widget must store for a click at (sx, sy)
        return [math.floor((sx - self.ox) / self.s), math.floor((sy - self.oy) / self.s)]


def widget_value(page):
    return page.evaluate(f"""() => {{
        const wf = {APP}.graph.serialize();
        return wf.nodes.find((n) => n.id === 2).widgets_values;
    }}""")


def prompt_inputs(page):
    return page.evaluate(f"async () => (await {APP}.graphToPrompt()).output['2'].inputs")


@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_point_editor_stores_exact_image_pixels(request, browser, frontend):
    fixture, vue = FRONTENDS[frontend]
    srv = request.getfixturevalue(fixture)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    # (the newest frontend throws some errors of its own offline; only this pack's count)
    page.on("pageerror", lambda e: errors.append(str(e)) if "dragnoise" in f"{e}{e.stack}".lower() else None)
    try:
        canvas = open_editor(page, srv, vue)
        if vue:  # really the Vue renderer: the node is a DOM element, the editor inside it
            assert page.locator('.lg-node[data-node-id="2"] canvas.dragnoise-points-canvas').count() == 1
        box = canvas.bounding_box()
        sc = Screen(box)
        assert sc.s > 2.5, f"the zoom did not reach the editor: {box}"  # 1.7 x ~ 1.5 CSS px per pixel

        def click(x, y, **kw):
            sx, sy = sc.at(x, y)
            page.mouse.click(sx, sy, **kw)
            return sc.pixel(sx, sy)

        a_h, a_t = click(20, 30), click(50, 30)
        b_h, b_t = click(90, 100), click(100, 60)
        c_h, c_t = click(10, 110), click(40, 118)
        assert [a_h, a_t, b_h, b_t, c_h, c_t] == [[20, 30], [50, 30], [90, 100], [100, 60], [10, 110], [40, 118]]

        # drag A's target to a new pixel
        page.mouse.move(*sc.at(50, 30))
        page.mouse.down()
        for x, y in ((52, 33), (56, 40), (60, 45)):
            page.mouse.move(*sc.at(x, y), steps=3)
        page.mouse.up()
        a_t = sc.pixel(*sc.at(60, 45))
        pairs = [{"handle": a_h, "target": a_t}, {"handle": b_h, "target": b_t}, {"handle": c_h, "target": c_t}]
        assert json.loads(widget_value(page)[0]) == pairs
        if frontend == "pinned":
            ed = page.locator(".dragnoise-points-editor").first
            ed.screenshot(path=str(ROOT / "docs" / "widget.png"))

        # right click on B's handle deletes pair B; Undo brings it back; Delete on the selected pair removes it
        sx, sy = sc.at(*b_h)
        page.mouse.click(sx, sy, button="right")
        assert json.loads(widget_value(page)[0]) == [pairs[0], pairs[2]]
        page.locator(".dragnoise-points-editor button.dragnoise-undo").first.click()
        assert json.loads(widget_value(page)[0]) == pairs
        click(*b_t)  # selects B
        page.keyboard.press("Delete")
        final = [pairs[0], pairs[2]]
        assert page.evaluate(f"() => !!{APP}.graph.getNodeById(2)"), "Delete removed the node instead of the pair"

        # (a) the workflow: the plain JSON list in the string widget, nothing else serialized
        values = widget_value(page)
        assert json.loads(values[0]) == final
        assert values == [json.dumps(final, separators=(",", ":"))]
        # (b) the API prompt the frontend builds
        inputs = prompt_inputs(page)
        assert json.loads(inputs["points"]) == final
        assert set(inputs) == {"points", "image"}
        assert inputs["image"] == ["1", 0]
        assert not errors, errors
    finally:
        page.close()


def test_size_change_warns_and_keeps_points(request, browser, server):
    from PIL import Image
    Image.new("RGB", (96, 64), (90, 90, 90)).save(Path(server.base) / "input" / OTHER_IMAGE)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        canvas = open_editor(page, server, False)
        sc = Screen(canvas.bounding_box())
        page.mouse.click(*sc.at(100, 100))
        page.mouse.click(*sc.at(120, 90))
        warning = page.locator(".dragnoise-points-warning").first
        assert not warning.is_visible()
        page.evaluate(f"""(name) => {{
            const w = {APP}.graph.getNodeById(1).widgets.find((w) => w.name === "image");
            w.value = name; w.callback?.(name);
        }}""", OTHER_IMAGE)
        page.wait_for_function("() => document.querySelector('.dragnoise-points-warning')?.offsetParent !== null",
                               timeout=10_000)
        text = warning.inner_text()
        assert "128x128" in text and "96x64" in text and "outside" in text, text
        assert json.loads(widget_value(page)[0]) == [{"handle": [100, 100], "target": [120, 90]}]
        # back to an image of the original size: the warning goes, the points stay
        page.evaluate(f"""(name) => {{
            const w = {APP}.graph.getNodeById(1).widgets.find((w) => w.name === "image");
            w.value = name; w.callback?.(name);
        }}""", graphs.IMAGE)
        page.wait_for_function("() => document.querySelector('.dragnoise-points-warning')?.offsetParent === null",
                               timeout=10_000)
        assert json.loads(widget_value(page)[0]) == [{"handle": [100, 100], "target": [120, 90]}]
    finally:
        page.close()


@pytest.mark.parametrize("frontend", ["pinned", "latest"])
def test_image_from_the_nodes_own_run_and_points_set_as_text(request, browser, frontend):
    """No upstream LoadImage: the editor shows the image of the node's `executed` message (what
    nodes/points.py sends after a run, dispatched here through the frontend's api) and follows a
    points string set from outside, as an API user or a text edit would."""
    srv = request.getfixturevalue(FRONTENDS[frontend][0])
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        canvas = open_editor(page, srv, False, linked=False)
        assert "no image" in page.locator(".dragnoise-points-editor").first.inner_text()
        page.evaluate(f"""(name) => {{
            const api = window.comfyAPI?.api?.api ?? {APP}.api;
            const images = [{{ filename: name, subfolder: "", type: "input" }}];
            api.dispatchCustomEvent("executed", {{ node: "2", display_node: "2", prompt_id: "p", output: {{ dragnoise_image: images }} }});
        }}""", graphs.IMAGE)
        page.wait_for_function(f"() => {APP}.graph.getNodeById(2).dragnoiseEditor.img?.naturalWidth === {N}",
                               timeout=10_000)
        text = json.dumps([{"handle": [5, 6], "target": [7, 8]}])
        page.evaluate(f"(t) => {{ {APP}.graph.getNodeById(2).widgets.find((w) => w.name === 'points').value = t; }}", text)
        page.wait_for_function(f"() => {APP}.graph.getNodeById(2).dragnoiseEditor.pts.length === 1", timeout=5_000)
        sc = Screen(canvas.bounding_box())
        page.mouse.click(*sc.at(64, 64))
        page.mouse.click(*sc.at(100, 70))
        want = [{"handle": [5, 6], "target": [7, 8]}, {"handle": [64, 64], "target": [100, 70]}]
        assert json.loads(widget_value(page)[0]) == want
        assert json.loads(prompt_inputs(page)["points"]) == want
        page.keyboard.press("Control+z")
        assert json.loads(widget_value(page)[0]) == want[:1]
        page.locator(".dragnoise-points-editor button.dragnoise-clear").first.click()
        assert json.loads(prompt_inputs(page)["points"]) == []
    finally:
        page.close()
