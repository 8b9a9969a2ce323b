"""API-format prompts used by the server tests (the graph a user wires in the UI)."""
from __future__ import annotations

import json

IMAGE = "dragnoise_test.png"
SIZE = 128
UNET, CLIP = "dragnoise_tiny_sd15.safetensors", "dragnoise_tiny_clip_l.safetensors"
PACK_PREFIX = "DragNoise"  # this pack's class_types; every other node is ComfyUI's, whose interface moves


# --- a node's interface as /object_info declares it ------------------------------------------------
# The frontend makes one widget per INT/FLOAT/STRING/BOOLEAN/COMBO input, in declaration order (required,
# then optional), plus its own "control_after_generate" after a seed and "upload" after an image picker.
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
FRONTEND_ONLY = {"control_after_generate": None, "upload": "image"}  # widgets with no input behind them


def declared_inputs(info: dict, groups=("required", "optional")) -> list:
    """[(name, type, options)] of a node's required and optional inputs, in declaration order."""
    out = []
    for group in groups:
        spec = info.get("input", {}).get(group, {})
        for name in info.get("input_order", {}).get(group, list(spec)):
            kind, *rest = spec[name]
            out.append((name, kind, rest[0] if rest and isinstance(rest[0], dict) else {}))
    return out


def default_of(kind, opts: dict):
    """The value a node gets for an input nobody set: its declared default, else the frontend's choice."""
    if "default" in opts:
        return opts["default"]
    if isinstance(kind, list) or kind == "COMBO":  # the first option (None when the host lists none)
        options = kind if isinstance(kind, list) else opts.get("options")
        return options[0] if options else None
    return {"INT": opts.get("min", 0), "FLOAT": opts.get("min", 0.0), "STRING": "", "BOOLEAN": False}.get(kind)


def is_widget(kind, opts: dict) -> bool:
    return (isinstance(kind, list) or kind in WIDGET_TYPES) and not opts.get("forceInput")


def widget_defaults(info: dict) -> dict:
    """{widget name: default} in the frontend's widget order (the order widgets_values is read in).
    Frontend-only widgets map to their default, or None where the frontend picks it (seed control)."""
    out = {}
    for name, kind, opts in declared_inputs(info):
        if not is_widget(kind, opts):
            continue
        out[name] = default_of(kind, opts)
        if kind == "INT" and (opts.get("control_after_generate") or name in ("seed", "noise_seed")):
            out["control_after_generate"] = FRONTEND_ONLY["control_after_generate"]
        if opts.get("image_upload"):
            out["upload"] = FRONTEND_ONLY["upload"]
    return out


def with_defaults(prompt: dict, object_info: dict) -> dict:
    """Every required input of ComfyUI's own nodes that the prompt leaves out, at the node's declared default:
    a ComfyUI that adds a required input with a default then still runs the graph (ComfyUI's /prompt refuses
    a missing required input even when it has a default). This pack's nodes are left as given."""
    for nid, node in prompt.items():
        info = object_info.get(node["class_type"])
        if info is None or node["class_type"].startswith(PACK_PREFIX):
            continue
        for name, kind, opts in declared_inputs(info, ("required",)):
            if name not in node["inputs"] and is_widget(kind, opts):
                node["inputs"][name] = default_of(kind, opts)
    return prompt


def write_test_image(path, size: int = SIZE):
    """A flat background with a red disc and a blue square: content a drag can move."""
    import numpy as np
    from PIL import Image
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = (200, 220, 180)
    img[(xx - size * 0.35) ** 2 + (yy - size * 0.5) ** 2 < (size * 0.15) ** 2] = (220, 40, 40)
    img[int(size * .6):int(size * .8), int(size * .6):int(size * .8)] = (40, 60, 210)
    Image.fromarray(img).save(path)


SD_REFS = {"model": ["unet", 0], "pos": ["pos", 0], "neg": ["neg", 0], "vae": ["vae", 0]}


def toy_sources(scene: int, size: int = SIZE):
    """The bundled toy model and one of its seeded scenes, as drag_prompt sources."""
    nodes = {
        "toy": {"class_type": "DragNoiseToyModelLoader", "inputs": {}},
        "image": {"class_type": "DragNoiseToyScene", "inputs": {"scene": scene, "size": size}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["image", 0], "vae": ["toy", 1]}},
    }
    return nodes, {"model": ["toy", 0], "pos": ["toy", 2], "neg": ["toy", 2], "vae": ["toy", 1]}


def loaders() -> dict:
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": UNET, "weight_dtype": "default"}},
        "clip": {"class_type": "CLIPLoader", "inputs": {"clip_name": CLIP, "type": "stable_diffusion"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["clip", 0], "text": "a red disc and a blue square"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["clip", 0], "text": ""}},
        "image": {"class_type": "LoadImage", "inputs": {"image": IMAGE}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["image", 0], "vae": ["vae", 0]}},
    }


def drag_prompt(points, steps=10, inversion_steps=7, iterations=5, end_step=0, prefix="drag", mask=None,
                sources=None, lr=0.01, r1=1) -> dict:
    """Load -> encode -> invert -> points -> optimize -> patch -> KSampler Advanced -> decode -> save.

    sources = (loader nodes with "image" and "encode", refs for model/pos/neg/vae); default: loaders().
    """
    nodes, r = sources or (loaders(), SD_REFS)
    p = dict(nodes)
    p.update({
        "invert": {"class_type": "DragNoiseInversion", "inputs": {
            "model": r["model"], "positive": r["pos"], "latent": ["encode", 0],
            "steps": steps, "inversion_steps": inversion_steps}},
        "points": {"class_type": "DragNoisePoints", "inputs": {
            "points": points if isinstance(points, str) else json.dumps(points), "image": ["image", 0]}},
        "optimize": {"class_type": "DragNoiseOptimize", "inputs": {
            "model": r["model"], "positive": r["pos"], "inversion": ["invert", 1], "points": ["points", 0],
            "iterations": iterations, "lr": lr, "lam": 0.1, "r1": r1, "r2": 3}},
        "patch": {"class_type": "DragNoisePropagation", "inputs": {
            "model": r["model"], "bottleneck": ["optimize", 0], "end_step": end_step}},
        "sample": {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["patch", 0], "add_noise": "disable", "noise_seed": 0, "steps": ["invert", 2], "cfg": 1.0,
            "sampler_name": "ddim", "scheduler": "ddim_uniform", "positive": r["pos"], "negative": r["neg"],
            "latent_image": ["invert", 0], "start_at_step": ["invert", 3], "end_at_step": 10000,
            "return_with_leftover_noise": "disable"}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": r["vae"]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}},
    })
    if mask is not None:
        p.update(mask)
        p["optimize"]["inputs"]["mask"] = [next(iter(mask)), 0]
    return p


def plain_sample_prompt(advanced: bool, prefix: str) -> dict:
    """Sample with the user's original MODEL; KSampler and its KSamplerAdvanced twin give identical
    results but have different cache keys, so the second really runs again."""
    p = loaders()
    p["latent"] = {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}
    common = {"model": ["unet", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
              "steps": 4, "cfg": 3.0, "sampler_name": "ddim", "scheduler": "ddim_uniform"}
    if advanced:
        p["sample"] = {"class_type": "KSamplerAdvanced", "inputs": {
            **common, "add_noise": "enable", "noise_seed": 7, "start_at_step": 0, "end_at_step": 10000,
            "return_with_leftover_noise": "disable"}}
    else:
        p["sample"] = {"class_type": "KSampler", "inputs": {**common, "seed": 7, "denoise": 1.0}}
    p["decode"] = {"class_type": "VAEDecode", "inputs": {"samples": ["sample", 0], "vae": ["vae", 0]}}
    p["save"] = {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}}
    return p


def lora_fit_prompt(points, object_info: dict, train_steps=2, batch=4, **drag) -> dict:
    """Fit a LoRA to the one image with ComfyUI's own TrainLoraNode, then drag with it
    (DragDiffusion/DragNoise's real-photo fidelity step). object_info: the server's /object_info, whose
    training nodes differ by version (0.33 returns no MODEL first and asks for more inputs)."""
    p = drag_prompt(points, **drag)
    # ComfyUI 0.3.75's TrainLoraNode fails on a single latent tensor (multi_res unset); a list of
    # latents takes its working path, and 4 copies of the image give the official batch of 4.
    p["repeat"] = {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["encode", 0], "amount": batch}}
    p["split"] = {"class_type": "RebatchLatents", "inputs": {"latents": ["repeat", 0], "batch_size": 1}}
    p["train"] = {"class_type": "TrainLoraNode", "inputs": {
        "model": ["unet", 0], "latents": ["split", 0], "positive": ["pos", 0], "batch_size": batch,
        "grad_accumulation_steps": 1, "steps": train_steps, "learning_rate": 0.0005, "rank": 16,
        "optimizer": "AdamW", "loss_function": "MSE", "seed": 0, "training_dtype": "fp32", "lora_dtype": "fp32",
        "algorithm": "LoRA", "gradient_checkpointing": False, "existing_lora": "[None]"}}
    p["lora"] = {"class_type": "LoraModelLoader", "inputs": {"model": ["unet", 0], "lora": ["train", None],
                                                             "strength_model": 1.0}}
    # the LORA_MODEL output where this ComfyUI has it (0.3.75: output 1 after MODEL; 0.33: output 0), and
    # each required input we do not set (0.33's quantized_backward ... bypass_mode, LoraModelLoader's
    # bypass) at the node's own default
    p["lora"]["inputs"]["lora"][1] = object_info["TrainLoraNode"]["output"].index("LORA_MODEL")
    with_defaults(p, object_info)
    for node in ("invert", "optimize", "patch"):
        p[node]["inputs"]["model"] = ["lora", 0]
    return p


def sdxl_sources(ckpt: str, size: int = SIZE, cond_size: int = 1024, text: str = "a red disc and a blue square"):
    """An SDXL-family checkpoint and CLIP Text Encode (SDXL) (the size embeddings of `y`), as drag_prompt sources."""
    def encode(t):
        return {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "clip": ["ckpt", 1], "width": cond_size, "height": cond_size, "crop_w": 0, "crop_h": 0,
            "target_width": cond_size, "target_height": cond_size, "text_g": t, "text_l": t}}
    nodes = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "pos": encode(text), "neg": encode(""),
        "image": {"class_type": "LoadImage", "inputs": {"image": IMAGE}},
        "encode": {"class_type": "VAEEncode", "inputs": {"pixels": ["image", 0], "vae": ["ckpt", 2]}},
    }
    return nodes, {"model": ["ckpt", 0], "pos": ["pos", 0], "neg": ["neg", 0], "vae": ["ckpt", 2]}


def with_unpatched(p: dict) -> dict:
    """Add to a drag_prompt graph the same sampling of the same inverted latent with the MODEL the patch
    was given instead of the patched one (saved by "save_plain"): what the drag changed is the difference
    between "save" and "save_plain". One more short sampling, cached while its inputs are unchanged."""
    p["sample_plain"] = {**p["sample"], "inputs": {**p["sample"]["inputs"], "model": p["patch"]["inputs"]["model"]}}
    p["decode_plain"] = {**p["decode"], "inputs": {**p["decode"]["inputs"], "samples": ["sample_plain", 0]}}
    p["save_plain"] = {**p["save"], "inputs": {"images": ["decode_plain", 0],
                                               "filename_prefix": p["save"]["inputs"]["filename_prefix"] + "_plain"}}
    return p
