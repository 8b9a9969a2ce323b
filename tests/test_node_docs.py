"""Each node's documentation page (web/docs/<node>.md, Korean in web/docs/<node>/ko.md) is served by the
real server, names every input and output with its default, and opens in the frontend's node docs
panel, pictures included."""
import json
import urllib.parse
from pathlib import Path

import pytest

from test_widget import APP, READY, SETTINGS

ROOT = Path(__file__).resolve().parents[1]
PACK = "comfyui-dragnoise"  # the folder name ComfyServer links the pack as


def test_every_node_has_docs_naming_its_inputs_and_outputs(server):
    info = server.get("/object_info")
    ours = {k: v for k, v in info.items() if v.get("python_module", "").endswith(PACK)}
    assert len(ours) == 6, sorted(ours)
    for name, node in ours.items():
        for locale in (".md", "/ko.md"):
            text = server.get(f"/extensions/{PACK}/docs/{name}{locale}").decode()
            inputs = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
            for key, spec in inputs.items():
                assert f"`{key}`" in text, f"{name}{locale}: input {key} is not documented"
                default = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
                if default is not None and key != "points":
                    row = next(line for line in text.splitlines() if f"`{key}`" in line and "|" in line)
                    want = f"| {default:g} |" if isinstance(default, float) else f"| {default} |"
                    assert want in row, f"{name}{locale}: {key}'s default {default} missing from: {row}"
            for out in node["output_name"]:
                assert f"`{out}`" in text, f"{name}{locale}: output {out} is not documented"
            for img in [s.split(")")[0] for s in text.split("](")[1:]]:
                assert server.get(f"/extensions/{PACK}/docs/{urllib.parse.quote(img)}")[:4] == b"\x89PNG", img


@pytest.mark.parametrize("locale, words", [("en", "semantic alignment"), ("ko", "앵커 포인트")])
def test_docs_panel_shows_the_page(browser, server_latest, locale, words):
    settings = Path(server_latest.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps({**SETTINGS, "Comfy.Locale": locale}))
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(server_latest.url, wait_until="domcontentloaded")
        page.wait_for_function(READY, timeout=90_000)
        # as a user: select the node, press the selection toolbox's Node Info button
        wf = json.loads((ROOT / "workflows" / "dragnoise_toy_demo.json").read_text())
        page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); }}", wf)
        page.wait_for_timeout(1000)
        page.evaluate(f"() => {APP}.canvas.selectNode({APP}.graph._nodes.find((n) => n.type === 'DragNoiseOptimize'))")
        # (the toolbox follows the canvas, which the frontend may still be moving: no stable box to click)
        page.locator('button[data-testid="info-button"]').first.dispatch_event("click")
        page.wait_for_function("(w) => document.body.innerText.includes(w)", arg=words, timeout=20_000)
        assert page.get_by_text("trail_every").first.is_visible()
        page.wait_for_function("() => [...document.querySelectorAll('img')].some((i) => "
                               "i.src.includes('/docs/img/live.png') && i.naturalWidth > 0)", timeout=20_000)
        if locale == "en":
            page.screenshot(path=str(ROOT / "docs" / "node_docs.png"))
    finally:
        page.close()
