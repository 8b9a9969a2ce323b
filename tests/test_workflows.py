"""Every workflow in workflows/ opens in the real frontend, converts to an API prompt, and runs.

The frontend (headless Chromium) does the UI -> API conversion exactly as the Queue button does;
the prompt is then pointed at the small test models and run on the test host. What the frontend loaded
is compared with the file input by input NAME against the host's /object_info, so a ComfyUI that adds an
input with a default passes, and one that removed, renamed or reordered an input the file sets fails
naming it.
"""
import io
import json
import math
import re
import shutil
from pathlib import Path

import pytest

import graphs
import tiny_sdxl
from test_widget import APP, READY, SETTINGS

ROOT = Path(__file__).resolve().parents[1]
# X.comfyui-A.B.json: one of several files of workflow X, each for an interface of ComfyUI's core nodes
# (made on ComfyUI A.B); a user of any ComfyUI opens the one whose nodes fit that ComfyUI (misfits below)
VARIANT = re.compile(r"(.+)\.comfyui-(\d+)\.(\d+)\.json$")
WORKFLOWS = sorted({ROOT / "workflows" / (VARIANT.match(p.name).group(1) + ".json") if VARIANT.match(p.name) else p
                    for p in (ROOT / "workflows").glob("*.json")})


# --- a workflow file against a ComfyUI's interface (/object_info) --------------------------------------
def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                and not isinstance(b, bool) and math.isclose(a, b, rel_tol=1e-6))
    return a == b


def misfits(wf: dict, object_info: dict) -> list[str]:
    """Why this ComfyUI cannot open the file as written ([] if it can): a node type it lacks, an input the
    file sets by name that it lacks, a link from an output slot it lacks or of another type."""
    out = []
    for node in wf["nodes"]:
        if node["type"] == "Note":  # the frontend's own
            continue
        info = object_info.get(node["type"])
        if info is None:
            out.append(f"{node['type']}: no such node in this ComfyUI")
            continue
        host = graphs.widget_defaults(info)
        out += [f"{node['type']}: no input '{n}' in this ComfyUI (removed or renamed)"
                for n in node.get("widgets_values_named", {}) if n not in host]
        for slot, o in enumerate(node["outputs"]):
            if o["links"] and (slot >= len(info["output"]) or info["output"][slot] != o["type"]):
                got = info["output"][slot] if slot < len(info["output"]) else "nothing"
                out.append(f"{node['type']}: output {slot} is {got} in this ComfyUI; the file links a {o['type']}")
    return out


def for_this_comfyui(path: Path, object_info: dict) -> Path:
    """The file of workflow `path` that a user of this ComfyUI opens: the one whose nodes fit this ComfyUI's
    interface (outputs and input names), not a version number. Fails, saying why, unless exactly one fits."""
    files = [path] if path.is_file() else sorted(path.parent.glob(path.stem + ".comfyui-*.json"))
    why = {p.name: misfits(json.loads(p.read_text()), object_info) for p in files}
    fit = [p for p in files if not why[p.name]]
    assert len(fit) == 1, f"{path.stem}: {len(fit)} of its files fit this ComfyUI: {json.dumps(why, indent=1)}"
    return fit[0]


def frontend_loads(info: dict, values) -> dict:
    """What the frontend's widgets hold after it loads a node's widgets_values (LGraphNode.configure in
    1.32-1.58): the values in order into the host's widgets, the rest at their defaults. Frontend 1.49 writes
    null, not [], for a node with no widgets."""
    loaded = graphs.widget_defaults(info)
    for name, v in zip(list(loaded), values or []):
        loaded[name] = v
    return loaded


def load_problems(node: dict, loaded: dict, info: dict) -> list[str]:
    """The node as the frontend loaded it, against the file, by input name: every value the file sets is the
    loaded one; an input the host added holds its declared default; an input the file sets that the host
    lacks (removed or renamed) is named."""
    out, host, stored = [], graphs.widget_defaults(info), node.get("widgets_values_named", {})
    for name, v in stored.items():
        if name not in host:
            out.append(f"{node['type']}: input '{name}' (the file sets {v!r}) is not an input of this ComfyUI's "
                       f"{node['type']}: removed or renamed")
        elif not same(loaded.get(name), v):
            out.append(f"{node['type']}: input '{name}' loaded as {loaded.get(name)!r}; the file sets {v!r}")
    for name, default in host.items():
        if name not in stored and default is not None and not same(loaded.get(name), default):
            out.append(f"{node['type']}: input '{name}' (new in this ComfyUI) loaded as {loaded.get(name)!r}, "
                       f"not its default {default!r}")
    return out


def test_every_workflow_stores_its_values_by_name():
    """The comparison reads the names from the file: generated files carry widgets_values_named (the
    frontend's own field) beside widgets_values, in the same order."""
    for p in (ROOT / "workflows").glob("*.json"):
        for node in json.loads(p.read_text())["nodes"]:
            assert list(node.get("widgets_values_named", {}).values()) == node["widgets_values"], \
                f"{p.name}: {node['type']}"


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
            "ImageScale": {"width": graphs.SIZE, "height": graphs.SIZE},
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
def object_info(server):
    return server.get("/object_info")


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
def test_workflow_opens_converts_and_runs(page, server, object_info, path, request):
    path = for_this_comfyui(path, object_info)
    wf = json.loads(path.read_text())
    if any(n["type"] == "CLIPTextEncodeSDXL" for n in wf["nodes"]):
        request.getfixturevalue("sdxl_checkpoint")
    result = page.evaluate(f"""async (wf) => {{
        const app = {APP};
        await app.loadGraphData(wf);
        const missing = app.graph._nodes.filter(n => !LiteGraph.registered_node_types[n.type]).map(n => n.type);
        const p = await app.graphToPrompt();
        // each node's widgets by name as loaded (those the frontend serializes: serialize !== false)
        const widgets = Object.fromEntries(app.graph._nodes.map(n => [n.id,
            (n.widgets ?? []).filter(w => w.serialize !== false).map(w => [w.name, w.value])]));
        return {{missing, nodes: app.graph._nodes.length, output: p.output, widgets}};
    }}""", wf)
    assert result["missing"] == [], f"{path.name}: node types unknown to the frontend: {result['missing']}"
    assert result["nodes"] == len(wf["nodes"])
    prompt = result["output"]
    # the frontend loaded every value the file sets into the input of that name, and an input this ComfyUI
    # added at its default (a value read into the wrong widget, or a name the host lacks, is named)
    problems = []
    for node in wf["nodes"]:
        if node["type"] in ("DragNoisePoints", "Note"):  # the editor may re-serialize its JSON compactly
            continue
        got = result["widgets"][str(node["id"])]
        info = object_info[node["type"]]
        # the frontend's widgets are the ones /object_info implies (what frontend_loads and misfits assume)
        assert [n for n, _ in got] == list(graphs.widget_defaults(info)), f"{node['type']}: {got}"
        problems += load_problems(node, dict(got), info)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)
    # every link in the file survived the conversion (a broken link drops the input)
    for link_id, src, _, dst, slot, _ in wf["links"]:
        node = next(n for n in wf["nodes"] if n["id"] == dst)
        name = node["inputs"][slot]["name"]
        assert prompt[str(dst)]["inputs"].get(name) is not None, f"{path.name}: link {link_id} into {name} lost"
    entry = server.run(to_test_host(prompt))
    saved = [o for o in entry["outputs"].values() if o.get("images")]
    assert saved, f"{path.name}: no image came out"


def upstream(prompt: dict, nid: str) -> dict:
    """The nodes of an API prompt that node `nid` depends on, itself included."""
    out, todo = {}, [nid]
    while todo:
        k = todo.pop()
        if k not in out:
            out[k] = prompt[k]
            todo += [v[0] for v in prompt[k]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return out


def test_sdxl_workflow_drags_a_picture_at_the_size_its_text_encoder_is_given(page, server):
    """SDXL's size embeddings (CLIP Text Encode (SDXL): 1024) describe the picture the drag encodes: ComfyUI's
    own example.png is 768 px, so the workflow scales what Load Image gives to 1024 px."""
    from PIL import Image
    graphs.write_test_image(Path(server.base) / "input" / "dragnoise_768.png", 768)
    wf = json.loads((ROOT / "workflows" / "dragnoise_sdxl.json").read_text())
    prompt = page.evaluate(f"async (wf) => {{ await {APP}.loadGraphData(wf); return (await {APP}.graphToPrompt()).output; }}", wf)
    size = {(n["inputs"]["width"], n["inputs"]["height"]) for n in prompt.values() if n["class_type"] == "CLIPTextEncodeSDXL"}
    assert size == {(1024, 1024)}, size
    encode = next(k for k, n in prompt.items() if n["class_type"] == "VAEEncode")
    points = next(k for k, n in prompt.items() if n["class_type"] == "DragNoisePoints")
    run = upstream(prompt, prompt[encode]["inputs"]["pixels"][0])  # the picture the drag encodes, alone
    for n in run.values():
        if n["class_type"] == "LoadImage":
            n["inputs"]["image"] = "dragnoise_768.png"
    run["out"] = {"class_type": "SaveImage", "inputs": {"images": prompt[encode]["inputs"]["pixels"],
                                                        "filename_prefix": "sdxl_input"}}
    with Image.open(io.BytesIO(server.image(server.run(run), "out"))) as im:
        assert im.size == (1024, 1024), f"the SDXL drag encodes a {im.size} picture, its text encoder says 1024"
    # the points editor shows that same picture (its handles are in its pixels)
    assert prompt[points]["inputs"]["image"] == prompt[encode]["inputs"]["pixels"]


LOADER_DIRS = {"CheckpointLoaderSimple": "checkpoints", "ControlNetLoader": "controlnet"}
FILES = sorted((ROOT / "workflows").glob("*.json"))


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
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


# --- the comparison itself, against synthetic /object_info answers (no server) ---------------------------
def interface_of(wf: dict) -> dict:
    """A synthetic /object_info under which the file is exactly right: each node type with the file's widgets
    (its values as defaults) and outputs."""
    kinds = {bool: "BOOLEAN", int: "INT", float: "FLOAT", str: "STRING"}
    out = {}
    for node in wf["nodes"]:
        required = {}
        for name, v in node.get("widgets_values_named", {}).items():
            if name in graphs.FRONTEND_ONLY:  # the frontend's, behind the input before it
                continue
            opts = {"default": v}
            if name in ("seed", "noise_seed"):
                opts["control_after_generate"] = True
            if node["type"] == "LoadImage" and name == "image":
                opts["image_upload"] = True
            required[name] = [kinds[type(v)], opts]
        links = {i["name"]: [i["type"]] for i in node["inputs"] if "widget" not in i}
        out[node["type"]] = {"input": {"required": {**links, **required}},
                             "output": [o["type"] for o in node["outputs"]]}
    return out


def lora_fit(version: str) -> dict:
    return json.loads((ROOT / "workflows" / f"dragnoise_lora_fit.comfyui-{version}.json").read_text())


def problems_under(wf: dict, object_info: dict) -> list[str]:
    """load_problems for every node, with the frontend's positional loading modelled (frontend_loads)."""
    return [p for node in wf["nodes"] if node["type"] in object_info
            for p in load_problems(node, frontend_loads(object_info[node["type"]], node["widgets_values"]),
                                   object_info[node["type"]])]


def with_input(object_info: dict, node: str, name: str, spec: list, before: str = None) -> dict:
    """A copy of object_info where `node` has one more required input (at the end, or before `before`)."""
    info = json.loads(json.dumps(object_info))
    items = list(info[node]["input"]["required"].items())
    at = len(items) if before is None else [n for n, _ in items].index(before)
    info[node]["input"]["required"] = dict(items[:at] + [(name, spec)] + items[at:])
    return info


def test_an_input_the_host_added_with_a_default_passes():
    wf = json.loads((ROOT / "workflows" / "dragnoise_real_photo.json").read_text())
    info = interface_of(wf)
    assert problems_under(wf, info) == []
    newer = with_input(info, "KSamplerAdvanced", "sigma_shift", ["FLOAT", {"default": 1.0}])
    assert problems_under(wf, newer) == []
    # ... and the run graph gets it too: with_defaults fills it into an API prompt that leaves it out
    prompt = {"1": {"class_type": "KSamplerAdvanced", "inputs": {"noise_seed": 0}}}
    assert graphs.with_defaults(prompt, newer)["1"]["inputs"]["sigma_shift"] == 1.0
    assert graphs.with_defaults(prompt, newer)["1"]["inputs"]["scheduler"] == "ddim_uniform"


def test_a_changed_value_fails_naming_the_input():
    wf = json.loads((ROOT / "workflows" / "dragnoise_real_photo.json").read_text())
    info = interface_of(wf)
    node = next(n for n in wf["nodes"] if n["type"] == "KSamplerAdvanced")
    loaded = frontend_loads(info["KSamplerAdvanced"], node["widgets_values"])
    loaded["cfg"] = 7.0
    assert load_problems(node, loaded, info["KSamplerAdvanced"]) == [
        "KSamplerAdvanced: input 'cfg' loaded as 7.0; the file sets 1.0"]
    # an input added in the middle shifts the values the frontend reads by position: each is named
    shifted = with_input(info, "KSamplerAdvanced", "sigma_shift", ["FLOAT", {"default": 0.5}], before="cfg")
    found = problems_under(wf, shifted)
    assert any("'cfg' loaded as" in p for p in found) and any("'sigma_shift'" in p for p in found), found
    # an input the host added whose loaded value is not its declared default
    added = with_input(info, "KSamplerAdvanced", "sigma_shift", ["FLOAT", {"default": 1.0}])
    loaded = frontend_loads(added["KSamplerAdvanced"], node["widgets_values"]) | {"sigma_shift": 2.0}
    assert load_problems(node, loaded, added["KSamplerAdvanced"]) == [
        "KSamplerAdvanced: input 'sigma_shift' (new in this ComfyUI) loaded as 2.0, not its default 1.0"]


@pytest.mark.parametrize("change", ["removed", "renamed"])
def test_an_input_the_host_removed_or_renamed_fails_naming_node_and_input(change):
    wf = json.loads((ROOT / "workflows" / "dragnoise_real_photo.json").read_text())
    info = interface_of(wf)
    spec = info["DragNoisePropagation"]["input"]["required"].pop("end_step")
    if change == "renamed":
        info = with_input(info, "DragNoisePropagation", "end_at", spec, before="keep_outside_mask")
    found = problems_under(wf, info)
    assert any(p.startswith("DragNoisePropagation: input 'end_step'") and "removed or renamed" in p
               for p in found), found
    assert misfits(wf, info) == ["DragNoisePropagation: no input 'end_step' in this ComfyUI (removed or renamed)"]


def test_the_lora_fit_file_follows_the_training_nodes_interface(tmp_path):
    old, new = lora_fit("0.3"), lora_fit("0.33")
    for version in ("0.3", "0.33"):
        (tmp_path / f"dragnoise_lora_fit.comfyui-{version}.json").write_text(json.dumps(lora_fit(version)))
    group = tmp_path / "dragnoise_lora_fit.json"
    pick = lambda info: for_this_comfyui(group, info).name  # noqa: E731
    assert pick(interface_of(old)) == "dragnoise_lora_fit.comfyui-0.3.json"
    assert pick(interface_of(new)) == "dragnoise_lora_fit.comfyui-0.33.json"
    # a release between (the issue's): Train LoRA still returns a MODEL first and has one more input at the end
    between = with_input(interface_of(old), "TrainLoraNode", "bucket_mode", ["BOOLEAN", {"default": False}])
    assert pick(between) == "dragnoise_lora_fit.comfyui-0.3.json" and problems_under(old, between) == []
    # a newer one: 0.33's interface, Load LoRA Model with one more switch
    newer = with_input(interface_of(new), "LoraModelLoader", "offload", ["BOOLEAN", {"default": False}])
    assert pick(newer) == "dragnoise_lora_fit.comfyui-0.33.json" and problems_under(new, newer) == []
    # Train LoRA returning a MODEL, Load LoRA Model taking bypass: the 0.3 file (bypass at its default)
    mixed = interface_of(old)
    mixed["LoraModelLoader"] = interface_of(new)["LoraModelLoader"]
    assert pick(mixed) == "dragnoise_lora_fit.comfyui-0.3.json"
    # one that fits neither (0.33's outputs, without an input the 0.33 file sets) fails, saying why
    neither = interface_of(new)
    neither["TrainLoraNode"]["input"]["required"].pop("bypass_mode")
    with pytest.raises(AssertionError, match="0 of its files fit"):
        pick(neither)


def test_make_workflows_fills_a_core_node_from_object_info_by_name():
    """make_workflows --object-info: a core node takes the host's widget order, the script's values by name and
    the host's default for an input the script does not know; a file setting a name the host lacks is not
    written for it."""
    import sys
    sys.path.insert(0, str(ROOT / "scripts"))
    import make_workflows as mw
    wf = json.loads((ROOT / "workflows" / "dragnoise_real_photo.json").read_text())
    info = with_input(interface_of(wf), "KSamplerAdvanced", "sigma_shift", ["FLOAT", {"default": 0.5}], before="cfg")
    values = ["disable", 0, "fixed", 50, 1.0, "ddim", "ddim_uniform", 15, 10000, "disable"]
    old = dict(mw.OBJECT_INFO)
    try:
        mw.OBJECT_INFO.clear()
        mw.OBJECT_INFO.update(info)
        g = mw.Graph()
        node = g.nodes[g.add("KSamplerAdvanced", (0, 0), values) - 1]
        assert list(node["widgets_values_named"]) == list(graphs.widget_defaults(info["KSamplerAdvanced"]))
        assert node["widgets_values_named"]["sigma_shift"] == 0.5 and node["widgets_values_named"]["cfg"] == 1.0
        assert node["widgets_values"][node["widgets_values"].index(0.5) + 1] == 1.0  # in the host's order
        assert g.misfit == []
        info["KSamplerAdvanced"]["input"]["required"].pop("cfg")  # a file that sets cfg is not for this host
        g.add("KSamplerAdvanced", (0, 0), values)
        assert g.misfit == ["KSamplerAdvanced has no input cfg (removed or renamed?)"]
    finally:
        mw.OBJECT_INFO.clear()
        mw.OBJECT_INFO.update(old)
