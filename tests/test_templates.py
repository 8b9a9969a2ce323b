"""The Templates browser lists every DragNoise workflow with its own picture, and a click opens it readable.

ComfyUI serves workflows/ as this pack's templates; the frontend fetches each card's picture from
/api/workflow_templates/<pack>/<name>.jpg (always jpg for a custom node's templates).
"""
import json
import re
from pathlib import Path

import pytest

from test_widget import APP, SETTINGS

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "workflows").glob("*.json"))}
PACK = "comfyui-dragnoise"  # the pack's folder name in custom_nodes/, as ComfyServer links it


# X.comfyui-A.B.json: a workflow that needs one file per interface of ComfyUI's core nodes (the LoRA fit)
VARIANT = re.compile(r"(.+)\.comfyui-(\d+\.\d+)$")


def family(name: str) -> str:
    return VARIANT.match(name).group(1) if VARIANT.match(name) else name


FAMILIES = [family(n) for n in WORKFLOWS]


def test_a_workflow_with_a_file_per_comfyui_names_the_comfyui_of_each():
    """Every ComfyUI's Templates browser lists all files: each names its ComfyUI, and its Note says so too."""
    for name in WORKFLOWS:
        m = VARIANT.match(name)
        assert m or FAMILIES.count(name) == 1, f"{name}: one of several files of a workflow, not named for its ComfyUI"
        if m and FAMILIES.count(m.group(1)) > 1:
            notes = [n["widgets_values"][0] for n in WORKFLOWS[name]["nodes"] if n["type"] == "Note"]
            assert any(re.search(rf"ComfyUI {re.escape(m.group(2))}(?![\d])", t) for t in notes), \
                f"{name}: no Note says which ComfyUI it is for"
    assert any(VARIANT.match(n) for n in WORKFLOWS), "the LoRA-fit files are not named for their ComfyUI"


def card(name: str) -> str:
    return f"[data-testid='template-workflow-{name}']"


def test_every_workflow_has_its_picture():
    for name in WORKFLOWS:
        assert (ROOT / "workflows" / f"{name}.jpg").is_file(), name


def open_pack(page):
    """Open the Templates browser at this pack's section (as it is, if it already shows it)."""
    ours = ", ".join(card(n) for n in WORKFLOWS)
    for _ in range(6):
        if page.locator(ours).count():  # reopened at this pack, as the browser remembers it on 1.49+
            return
        if not page.get_by_text(PACK, exact=True).count():
            page.evaluate(f"() => {APP}.extensionManager.command.execute('Comfy.BrowseTemplates')")
        # the pack's entry under Extensions in the browser's side bar (the only text that is the pack's name
        # alone); the side bar re-renders while the template index loads (seen on 1.49.6), which can detach
        # the entry under a click, so try again until this pack's cards are shown
        try:
            page.get_by_text(PACK, exact=True).first.click(timeout=10_000)
            page.wait_for_selector(ours, timeout=10_000)
            return
        except Exception:
            page.keyboard.press("Escape")  # whatever covered it; the next round opens the browser again
    raise AssertionError(f"the Templates browser did not show {PACK}'s templates")


# pictures compared as GRID x GRID cells of mean grey, by their most different cell: the two closest shipped
# pictures (real_photo and real_photo_mask, one link apart) differ by 34 grey levels there, a re-encode by 1
GRID, SAME = 64, 8


def signature(path: Path) -> list:
    """Mean grey of each cell, cut at the same whole pixels as SHOWN cuts them in the page."""
    import numpy as np
    from PIL import Image
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    grey = rgb @ [0.299, 0.587, 0.114]
    h, w = grey.shape
    return [grey[gy * h // GRID:(gy + 1) * h // GRID, gx * w // GRID:(gx + 1) * w // GRID].mean()
            for gy in range(GRID) for gx in range(GRID)]


# the card's picture as the page shows it, reduced the same way (box means of grey) in the page
SHOWN = f"""i => {{
    const c = document.createElement("canvas");
    c.width = i.naturalWidth; c.height = i.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(i, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data, out = [];
    for (let gy = 0; gy < {GRID}; gy++) for (let gx = 0; gx < {GRID}; gx++) {{
        const x0 = Math.floor(gx * c.width / {GRID}), x1 = Math.floor((gx + 1) * c.width / {GRID});
        const y0 = Math.floor(gy * c.height / {GRID}), y1 = Math.floor((gy + 1) * c.height / {GRID});
        let sum = 0;
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) {{
            const k = 4 * (y * c.width + x);
            sum += 0.299 * d[k] + 0.587 * d[k + 1] + 0.114 * d[k + 2];
        }}
        out.push(sum / ((x1 - x0) * (y1 - y0)));
    }}
    return out;
}}"""


def whose(shown: list, pictures: dict) -> tuple:
    """The picture a card shows, by content: the nearest by its most different cell, that difference, and the
    next nearest's."""
    dist = {n: max(abs(a - b) for a, b in zip(shown, sig)) for n, sig in pictures.items()}
    best = min(dist, key=dist.get)
    return best, dist[best], sorted(dist.values())[1]


# the canvas's zoom against the frontend's own low-quality threshold (LGraphCanvas.updateLowQualityThreshold)
READABLE = f"""() => {{
    const app = {APP}, px = app.extensionManager.setting.get("LiteGraph.Canvas.MinFontSizeForLOD") ?? 8;
    return {{ scale: app.canvas.ds.scale,
             threshold: px / (LiteGraph.NODE_TEXT_SIZE * Math.sqrt(window.devicePixelRatio || 1)) }};
}}"""


def show_card(page, name: str):
    """Scroll the browser until the card is there (cards further down render as they come into view)."""
    page.wait_for_function(f"""() => {{
        const c = document.querySelector("{card(name)}");
        if (c) {{ c.scrollIntoView(); return true; }}
        [...document.querySelectorAll("[data-testid^='template-workflow-']")].pop()?.scrollIntoView();
        return false;
    }}""", polling=250, timeout=30_000)
    return page.locator(card(name))


@pytest.mark.parametrize("frontend", ["pinned", "latest"])
def test_templates_show_pictures_and_open(request, browser, frontend):
    pictures = {name: signature(ROOT / "workflows" / f"{name}.jpg") for name in WORKFLOWS}
    srv = request.getfixturevalue({"pinned": "server", "latest": "server_latest"}[frontend])
    settings = Path(srv.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    fetched = {}  # the pictures the page fetched from this pack's template folder, by file name
    page.on("response", lambda r: f"/workflow_templates/{PACK}/" in r.url and r.url.endswith(".jpg")
            and fetched.__setitem__(r.url.rsplit("/", 1)[1], r.status))
    try:
        page.goto(srv.url, wait_until="domcontentloaded")
        page.wait_for_function(f"() => {APP}?.graph && window.LiteGraph?.registered_node_types?.DragNoisePoints",
                               timeout=90_000)
        open_pack(page)
        for name in WORKFLOWS:
            img = show_card(page, name).locator("img").first
            img.wait_for(timeout=30_000)
            page.wait_for_function("i => i.complete && i.naturalWidth > 0", arg=img.element_handle(), timeout=30_000)
            assert fetched.get(f"{name}.jpg") == 200, f"{frontend}: {name}.jpg not served: {fetched}"
            if FAMILIES.count(family(name)) > 1:  # one of several files: its card says which ComfyUI (by its title)
                text = show_card(page, name).inner_text()
                assert re.search(r"comfyui-\d+\.\d+", text, re.I), f"{frontend}: the {name} card: {text!r}"
            shown, diff, next_diff = whose(img.evaluate(SHOWN), pictures)
            # its own picture, and told apart from the nearest other one (identical pictures are not)
            assert shown == name and diff <= SAME < next_diff, \
                f"{frontend}: the {name} card shows {shown}'s picture (grey difference {diff:.1f}, next {next_diff:.1f})"
        # a click on each card opens that workflow
        for name, wf in WORKFLOWS.items():
            if not page.locator(card(name)).count():
                open_pack(page)
            show_card(page, name).click()
            page.wait_for_selector(card(name), state="detached", timeout=30_000)
            try:  # the graph loads after the dialog closes (later under load)
                page.wait_for_function(f"n => {APP}.graph._nodes.length === n", arg=len(wf["nodes"]), timeout=30_000)
            except Exception:
                pass  # the assert below says what opened instead
            types = page.evaluate(f"() => {APP}.graph._nodes.map(n => n.type).sort()")
            assert types == sorted(n["type"] for n in wf["nodes"]), f"{frontend}: {name} opened something else"
            try:  # the view is set after the graph loads (later under load)
                page.wait_for_function(f"() => ({READABLE})().scale >= ({READABLE})().threshold", timeout=10_000)
            except Exception:
                pass  # the assert below says at which zoom it opened
            zoom = page.evaluate(READABLE)
            assert zoom["scale"] >= zoom["threshold"], \
                f"{frontend}: {name} opens at zoom {zoom['scale']:.2f}, where ComfyUI hides titles and widgets"
            page.keyboard.press("Escape")  # a missing-models dialog, if the workflow's checkpoint is absent
    finally:
        page.close()
