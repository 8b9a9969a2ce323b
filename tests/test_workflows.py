"""Every workflow in workflows/ opens in the real frontend, converts to an API prompt, and runs.

The frontend (headless Chromium) does the UI -> API conversion exactly as the Queue button does;
the prompt is then pointed at the small test models and run on the test host.
"""
import json
import re
import shutil
from pathlib import Path

import pytest

import graphs
import tiny_sdxl
from test_widget import APP, READY, SETTINGS

from conftest import COMFY

ROOT = Path(__file__).resolve().parents[1]
# X.comfyui-A.B.json stands in for X.json on ComfyUI A.B and newer (core nodes whose interface changed)
VARIANT = re.compile(r"(.+)\.comfyui-(\d+)\.(\d+)\.json$")
WORKFLOWS = sorted(p for p in (ROOT / "workflows").glob("*.json") if not VARIANT.match(p.name))


def comfyui_version() -> tuple:
    text = (COMFY / "comfyui_version.py").read_text()
    return tuple(int(x) for x in re.search(r'__version__ = "(\d+)\.(\d+)', text).groups())


def for_this_comfyui(path: Path) -> Path:
    """The file a user of the ComfyUI under test opens: the newest variant it is recent enough for."""
    best, best_v = path, (0, 0)
    for p in path.parent.glob(path.stem + ".comfyui-*.json"):
        v = tuple(int(x) for x in VARIANT.match(p.name).groups()[1:])
        if best_v < v <= comfyui_version():
            best, best_v = p, v
    return best


def test_every_variant_names_a_file_it_replaces():
    for p in (ROOT / "workflows").glob("*.json"):
        m = VARIANT.match(p.name)
        assert m is None or (p.parent / f"{m.group(1)}.json").is_file(), p.name


def to_test_host(prompt: dict) -> dict:
    """Swap the checkpoint for the test models and shrink the work to CPU size."""
    out = {}
    # SDXL workflows keep their checkpoint loader, pointed at the small SDXL-family test checkpoint
    sdxl = any(n["class_type"] == "CLIPTextEncodeSDXL" for n in prompt.values())
    for nid, node in prompt.items():
        inputs = node["inputs"]
        if node["class_type"] == "CheckpointLoaderSimple" and sdxl:
            inputs["ckpt_name"] = tiny_sdxl.CKPT
        elif node["class_type"] == "CheckpointLoaderSimple":
            loaders = graphs.loaders()
            for i, key in enumerate(("unet", "clip", "vae")):
                out[f"{nid}_{i}"] = loaders[key]
            continue
        for k, v in inputs.items():  # checkpoint outputs 0/1/2 -> the three loaders
            if not sdxl and isinstance(v, list) and prompt.get(v[0], {}).get("class_type") == "CheckpointLoaderSimple":
                inputs[k] = [f"{v[0]}_{v[1]}", 0]
        overrides = {
            "LoadImage": {"image": graphs.IMAGE},
            "DragNoiseInversion": {"steps": 10, "inversion_steps": 7},
            "DragNoiseOptimize": {"iterations": 2},
            "DragNoisePoints": {"points": json.dumps([{"handle": [45, 64], "target": [70, 64]}])},
            "EmptyLatentImage": {"width": graphs.SIZE, "height": graphs.SIZE},
            "KSampler": {"steps": 3},
            "LoraLoader": {"lora_name": "dragnoise_empty_lora.safetensors"},
            "ControlNetLoader": {"control_net_name": "dragnoise_tiny_controlnet.safetensors"},
            "RepeatLatentBatch": {"amount": 2},
            "TrainLoraNode": {"steps": 2, "batch_size": 2, "training_dtype": "fp32", "lora_dtype": "fp32",
                              "gradient_checkpointing": False},
        }.get(node["class_type"], {})
        inputs.update({k: v for k, v in overrides.items() if not isinstance(inputs.get(k), list)})
        out[nid] = node
    return out


@pytest.fixture(scope="module")
def page(browser, server, models_dir):
    import safetensors.torch
    import torch
    lora = Path(models_dir) / "loras" / "dragnoise_empty_lora.safetensors"
    if not lora.exists():  # a LoRA file with no matching keys: the loader chain runs, weights unchanged
        lora.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file({"unused.alpha": torch.tensor(1.0)}, str(lora))
    shutil.copy(Path(server.base) / "input" / graphs.IMAGE, Path(server.base) / "input" / "example.png")
    settings = Path(server.base) / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text(json.dumps(SETTINGS))
    p = browser.new_page()
    p.goto(server.url, wait_until="domcontentloaded")
    p.wait_for_function(READY, timeout=90_000)
    yield p
    p.close()


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_opens_converts_and_runs(page, server, path, request):
    path = for_this_comfyui(path)
    wf = json.loads(path.read_text())
    if any(n["type"] == "CLIPTextEncodeSDXL" for n in wf["nodes"]):
        request.getfixturevalue("sdxl_checkpoint")
    result = page.evaluate(f"""async (wf) => {{
        const app = {APP};
        await app.loadGraphData(wf);
        const missing = app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type);
        const p = await app.graphToPrompt();
        const widgets = Object.fromEntries(p.workflow.nodes.map(n => [n.id, n.widgets_values]));
        return {{missing, nodes: app.graph._nodes.length, output: p.output, widgets}};
    }}""", wf)
    assert result["missing"] == [], f"{path.name}: node types unknown to the frontend: {result['missing']}"
    assert result["nodes"] == len(wf["nodes"])
    prompt = result["output"]
    # the frontend read every widget value where the file put it (a wrong order or count shifts them)
    for node in wf["nodes"]:
        if node["type"] != "DragNoisePoints":  # its editor may re-serialize the JSON text compactly
            got = result["widgets"][str(node["id"])]
            if got is None and node["widgets_values"] == []:  # frontend 1.49 writes null for "no widgets"
                got = []
            assert got == node["widgets_values"], f"{path.name}: {node['type']}"
    # every link in the file survived the conversion (a broken link drops the input)
    for link_id, src, _, dst, slot, _ in wf["links"]:
        node = next(n for n in wf["nodes"] if n["id"] == dst)
        name = node["inputs"][slot]["name"]
        assert prompt[str(dst)]["inputs"].get(name) is not None, f"{path.name}: link {link_id} into {name} lost"
    entry = server.run(to_test_host(prompt))
    saved = [o for o in entry["outputs"].values() if o.get("images")]
    assert saved, f"{path.name}: no image came out"


LOADER_DIRS = {"CheckpointLoaderSimple": "checkpoints", "ControlNetLoader": "controlnet"}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_checkpoint_and_controlnet_loaders_say_where_to_download_their_file(path):
    """The frontend's missing-models dialog reads properties.models: each file a workflow names
    in a checkpoint or ControlNet loader carries its name, a download address and its folder."""
    for node in json.loads(path.read_text())["nodes"]:
        if node["type"] not in LOADER_DIRS:
            continue
        name = node["widgets_values"][0]
        models = node["properties"].get("models")
        assert models, f"{path.name}: {node['type']} names {name} with no download address"
        assert models[0]["name"] == name and models[0]["directory"] == LOADER_DIRS[node["type"]]
        assert models[0]["url"].startswith("https://huggingface.co/") and models[0]["url"].endswith("/" + name)
