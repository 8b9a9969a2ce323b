"""Writes the example workflows (ComfyUI UI format) into workflows/.

Kept as code so links and widget orders are written once; run it after a node's
inputs change: python scripts/make_workflows.py
With --object-info URL-or-FILE (a running ComfyUI, or its saved /object_info), ComfyUI's own nodes take
their widgets in that ComfyUI's order, and any input this script does not set at its declared default.
"""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))
import graphs  # noqa: E402  (a node's widgets and defaults as /object_info declares them)
from dragnoise_toy.model import (DEMO_INVERSION_STEPS, DEMO_ITERATIONS, DEMO_LR, DEMO_POINTS, DEMO_R1,  # noqa: E402
                                 DEMO_SCENE, SIZE as TOY_SIZE)  # the toy demo's settings and drag

OUT = Path(__file__).resolve().parents[1] / "workflows"
CKPT = "v1-5-pruned-emaonly.safetensors"
# Where a user who lacks a file gets it: the frontend's missing-models dialog reads a loader node's
# properties.models (name, url, directory). The SDXL name is set below, so this maps by file name.
DOWNLOADS = {
    "v1-5-pruned-emaonly.safetensors": ("https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/"
                                        "v1-5-pruned-emaonly.safetensors", "checkpoints"),
    "sd_xl_base_1.0.safetensors": ("https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/resolve/main/"
                                   "sd_xl_base_1.0.safetensors", "checkpoints"),
    "control_v11p_sd15_canny.pth": ("https://huggingface.co/lllyasviel/ControlNet-v1-1/resolve/main/"
                                    "control_v11p_sd15_canny.pth", "controlnet"),
}
POINTS = json.dumps([{"handle": [190, 260], "target": [300, 260]}])

# class -> (inputs [(name, type)], outputs [(name, type)], widget names in frontend order)
SPEC = {
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")], ["ckpt_name"]),
    "LoraLoader": ([("model", "MODEL"), ("clip", "CLIP")], [("MODEL", "MODEL"), ("CLIP", "CLIP")],
                   ["lora_name", "strength_model", "strength_clip"]),
    "CLIPTextEncode": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")], ["text"]),
    "CLIPTextEncodeSDXL": ([("clip", "CLIP")], [("CONDITIONING", "CONDITIONING")],
                           ["width", "height", "crop_w", "crop_h", "target_width", "target_height", "text_g", "text_l"]),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")], ["image", "upload"]),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")], ["upscale_method", "width", "height", "crop"]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], [("LATENT", "LATENT")], []),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")], []),
    "SaveImage": ([("images", "IMAGE")], [], ["filename_prefix"]),
    "EmptyLatentImage": ([], [("LATENT", "LATENT")], ["width", "height", "batch_size"]),
    "KSampler": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                  ("latent_image", "LATENT")], [("LATENT", "LATENT")],
                 ["seed", "control_after_generate", "steps", "cfg", "sampler_name", "scheduler", "denoise"]),
    "KSamplerAdvanced": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                          ("latent_image", "LATENT")], [("LATENT", "LATENT")],
                         ["add_noise", "noise_seed", "control_after_generate", "steps", "cfg", "sampler_name",
                          "scheduler", "start_at_step", "end_at_step", "return_with_leftover_noise"]),
    "ControlNetLoader": ([], [("CONTROL_NET", "CONTROL_NET")], ["control_net_name"]),
    "Canny": ([("image", "IMAGE")], [("IMAGE", "IMAGE")], ["low_threshold", "high_threshold"]),
    "ControlNetApplyAdvanced": ([("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                 ("control_net", "CONTROL_NET"), ("image", "IMAGE"), ("vae", "VAE")],
                                [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
                                ["strength", "start_percent", "end_percent"]),
    "RepeatLatentBatch": ([("samples", "LATENT")], [("LATENT", "LATENT")], ["amount"]),
    "RebatchLatents": ([("latents", "LATENT")], [("LATENT", "LATENT")], ["batch_size"]),
    "TrainLoraNode": ([("model", "MODEL"), ("latents", "LATENT"), ("positive", "CONDITIONING")],
                      [("model_with_lora", "MODEL"), ("lora", "LORA_MODEL"), ("loss_map", "LOSS_MAP"), ("steps", "INT")],
                      ["batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank", "optimizer",
                       "loss_function", "seed", "control_after_generate", "training_dtype", "lora_dtype", "algorithm",
                       "gradient_checkpointing", "existing_lora"]),
    "LoraModelLoader": ([("model", "MODEL"), ("lora", "LORA_MODEL")], [("MODEL", "MODEL")], ["strength_model"]),
    "DragNoiseInversion": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("latent", "LATENT")],
                           [("inverted_latent", "LATENT"), ("inversion", "DRAGNOISE_INVERSION"),
                            ("total_steps", "INT"), ("start_at_step", "INT")], ["steps", "inversion_steps"]),
    "DragNoisePoints": ([("image", "IMAGE")], [("drag_points", "DRAGNOISE_POINTS"), ("mask", "MASK")], ["points"]),
    "DragNoiseOptimize": ([("model", "MODEL"), ("positive", "CONDITIONING"), ("inversion", "DRAGNOISE_INVERSION"),
                          ("points", "DRAGNOISE_POINTS"), ("mask", "MASK")], [("bottleneck", "DRAGNOISE_BOTTLENECK")],
                         ["iterations", "lr", "lam", "r1", "r2", "trail_every", "preview_every", "low_memory", "band"]),
    "DragNoisePropagation": ([("model", "MODEL"), ("bottleneck", "DRAGNOISE_BOTTLENECK")],
                             [("model", "MODEL"), ("region", "MASK")], ["end_step", "keep_outside_mask"]),
    "GrowMask": ([("mask", "MASK")], [("MASK", "MASK")], ["expand", "tapered_corners"]),
    "MaskToImage": ([("mask", "MASK")], [("IMAGE", "IMAGE")], []),
    "ImageBlur": ([("image", "IMAGE")], [("IMAGE", "IMAGE")], ["blur_radius", "sigma"]),
    "ImageToMask": ([("image", "IMAGE")], [("MASK", "MASK")], ["channel"]),
    "ImageCompositeMasked": ([("destination", "IMAGE"), ("source", "IMAGE"), ("mask", "MASK")], [("IMAGE", "IMAGE")],
                             ["x", "y", "resize_source"]),
    "DragNoiseToyModelLoader": ([], [("model", "MODEL"), ("vae", "VAE"), ("positive", "CONDITIONING")], []),
    "DragNoiseToyScene": ([], [("image", "IMAGE")], ["scene", "size"]),
    "Note": ([], [], ["text"]),
}
# ComfyUI 0.33's training nodes: TrainLoraNode returns no MODEL first and asks for more settings, LoraModelLoader
# a bypass switch. No file can serve both (links name outputs by index, widgets by position), so the
# LoRA-fit workflow comes once per interface, named for the ComfyUI it was made for (README, Workflows).
SPEC_033 = {
    "TrainLoraNode": (SPEC["TrainLoraNode"][0], [("lora", "LORA_MODEL"), ("loss_map", "LOSS_MAP"), ("steps", "INT")],
                      ["batch_size", "grad_accumulation_steps", "steps", "learning_rate", "rank", "optimizer",
                       "loss_function", "seed", "control_after_generate", "training_dtype", "lora_dtype",
                       "quantized_backward", "algorithm", "gradient_checkpointing", "checkpoint_depth", "offloading",
                       "existing_lora", "bucket_mode", "bypass_mode"]),
    "LoraModelLoader": (SPEC["LoraModelLoader"][0], SPEC["LoraModelLoader"][1], ["strength_model", "bypass"]),
}
WIDGET_TYPES = {"steps": "INT", "start_at_step": "INT"}
OBJECT_INFO = {}  # a ComfyUI's /object_info (--object-info): its interface for the core nodes, else SPEC's
# Heights (body, without the 30 px title bar) that hold each node in the classic and the Vue
# renderer, whose widgets are taller; nodes not listed get 40 px per slot row and widget.
HEIGHT = {"Note": 260, "DragNoisePoints": 460, "DragNoiseOptimize": 560, "KSamplerAdvanced": 500, "KSampler": 380,
          "SaveImage": 420, "LoadImage": 400, "TrainLoraNode": 640, "CLIPTextEncode": 160}
TITLE, GAP = 30, 40  # LiteGraph draws the title bar above pos; clear space between boxes
# each workflow opens in a 1600x900 window with its graph in this box of it, clear of the side bar, the
# tabs and the floating workflow-name and Run bars (tests/test_layout.py checks the boxes)
VIEW_MARGIN, VIEW = (70, 135), (1500, 715)
# Below zoom MinFontSizeForLOD / (NODE_TEXT_SIZE * sqrt(devicePixelRatio)) = 8 / 14 = 0.57 on a 1x screen, the
# canvas draws nodes as grey boxes with no title or widgets (LGraphCanvas.updateLowQualityThreshold, frontends
# 1.32.9, 1.49.6 and 1.58.1; setting LiteGraph.Canvas.MinFontSizeForLOD, default 8). A graph too big for the
# window at READABLE opens at READABLE on its main path instead of whole.
READABLE = 0.65


def main_path(wf) -> set:
    """Ids of the drag a user works in: this pack's drag nodes (not the toy's model and scene sources) and
    every node downstream of them, down to Save Image."""
    ids = {n["id"] for n in wf["nodes"] if n["type"].startswith(graphs.PACK_PREFIX) and "Toy" not in n["type"]}
    while True:
        more = {dst for _, src, _, dst, _, _ in wf["links"] if src in ids} - ids
        if not more:
            return ids
        ids |= more


def box(nodes):
    """(x0, y0, x1, y1) around the nodes in graph units, title bars included."""
    return (min(n["pos"][0] for n in nodes), min(n["pos"][1] for n in nodes) - TITLE,
            max(n["pos"][0] + n["size"][0] for n in nodes), max(n["pos"][1] + n["size"][1] for n in nodes))


def height(cls, spec=SPEC):
    ins, outs, widgets = spec[cls]
    return HEIGHT.get(cls, 50 + 40 * (max(len(ins), len(outs)) + len(widgets)))


class Graph:
    def __init__(self, spec=SPEC):
        self.nodes, self.links, self.spec = [], [], spec
        self.misfit = []  # why the --object-info ComfyUI's core nodes do not fit this file (then it is not written)

    def add(self, cls, pos, widgets=(), size=(320, 130), title=None):
        """pos: (column, row) in the grid that settle() turns into coordinates."""
        ins, outs, names = self.spec[cls]
        named = dict(zip(names, widgets))
        if cls in OBJECT_INFO and not cls.startswith(graphs.PACK_PREFIX):
            host = graphs.widget_defaults(OBJECT_INFO[cls])
            gone = [n for n in named if n not in host]
            if gone:
                self.misfit.append(f"{cls} has no input {', '.join(gone)} (removed or renamed?)")
            if OBJECT_INFO[cls]["output"][:len(outs)] != [t for _, t in outs]:
                self.misfit.append(f"{cls}'s outputs differ")
            named = {n: named[n] if n in named else "fixed" if n == "control_after_generate" else d
                     for n, d in host.items()}
            widgets = list(named.values())
        node = {"id": len(self.nodes) + 1, "type": cls, "pos": list(pos), "size": [size[0], height(cls, self.spec)], "flags": {},
                "order": len(self.nodes), "mode": 0,
                "inputs": [{"name": n, "type": t, "link": None} for n, t in ins],
                "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(outs)],
                "properties": {"Node name for S&R": cls}, "widgets_values": list(widgets)}
        if named:  # the same values by name (the frontend's own field): which input each value is for
            node["widgets_values_named"] = named
        if title:
            node["title"] = title
        if widgets and widgets[0] in DOWNLOADS:
            url, directory = DOWNLOADS[widgets[0]]
            node["properties"]["models"] = [{"name": widgets[0], "url": url, "directory": directory}]
        self.nodes.append(node)
        return node["id"]

    def link(self, src, slot, dst, name):
        link_id = len(self.links) + 1
        s, d = self.nodes[src - 1], self.nodes[dst - 1]
        inputs = [i for i in d["inputs"] if i["name"] == name]
        if not inputs:  # a widget fed by a link (e.g. KSampler steps from the inversion)
            d["inputs"].append({"name": name, "type": WIDGET_TYPES[name], "widget": {"name": name}, "link": None})
            inputs = d["inputs"][-1:]
        inputs[0]["link"] = link_id
        s["outputs"][slot]["links"].append(link_id)
        self.links.append([link_id, src, slot, dst, d["inputs"].index(inputs[0]), s["outputs"][slot]["type"]])

    def settle(self):
        """Columns side by side (each as wide as its widest node), rows stacked: no box overlaps
        another, title bars included."""
        cols = sorted({n["pos"][0] for n in self.nodes})
        x, xs = 0, {}
        for c in cols:
            xs[c] = x
            x += max(n["size"][0] for n in self.nodes if n["pos"][0] == c) + GAP
        for c in cols:
            y = TITLE
            for n in sorted((n for n in self.nodes if n["pos"][0] == c), key=lambda n: n["pos"][1]):
                n["pos"] = [xs[c], y]
                y += n["size"][1] + TITLE + GAP

    def view(self):
        """The stored view (extra.ds) the workflow opens at (screen = (graph + offset) * scale in LiteGraph):
        the whole graph in the VIEW box if it fits at a readable zoom; else READABLE, with the main path in
        the box and as much of what feeds it as fits on its left and above."""
        (left, top), (w, h) = VIEW_MARGIN, VIEW
        x0, y0, x1, y1 = box(self.nodes)
        scale = math.floor(100 * min(1.0, w / (x1 - x0), h / (y1 - y0))) / 100
        if scale < READABLE:
            main = [n for n in self.nodes if n["id"] in main_path({"nodes": self.nodes, "links": self.links})]
            mx0, my0, mx1, my1 = box(main)
            scale = min(READABLE, math.floor(100 * min(w / (mx1 - mx0), h / (my1 - my0))) / 100)
            assert scale >= READABLE, f"the main path needs zoom {scale} to fit: lay it out smaller"
            x0, y0 = max(x0, mx1 - w / scale), max(y0, my1 - h / scale)
        return {"scale": scale, "offset": [round(left / scale - x0), round(top / scale - y0)]}

    def save(self, name, note):
        if self.misfit:  # (the LoRA-fit file of another ComfyUI's training nodes)
            print(f"skipped {name}: in this ComfyUI " + "; ".join(self.misfit))
            return
        self.settle()
        wf = {"last_node_id": len(self.nodes), "last_link_id": len(self.links), "nodes": self.nodes,
              "links": self.links, "groups": [], "config": {},
              "extra": {"dragnoise_note": note, "ds": self.view()}, "version": 0.4}
        (OUT / name).write_text(json.dumps(wf, indent=1) + "\n")


# Keeping in pixels: outside the editable region the saved image is the input's own pixels. The region
# (the Propagation Patch's `region`, 1 = may change) shrinks by -KEEP_GROW px (square footprint) and is
# blurred with a (2 KEEP_BLUR + 1)^2 kernel (ImageBlur's sigma is in units of the radius: its kernel spans
# -1..1), so the composite's mask is exactly 0 outside the region (the input's pixels, bit for bit) and
# exactly 1 from KEEP_FEATHER px inside it (the drag, untouched); in the ring between, the drag fades into
# the input, so no seam shows where the region ends. The feather lies inside: the drag's output can spill
# over the region's edge (the latent keeping lets one feathered cell through), and a ring outside would
# carry that spill into what should be the input (bench/RESULTS.md, "Keeping in pixels": 35 dB outside
# with a 4-8 px ring outside, exact with it inside). bench/accuracy.py's dragnoise_keep runs the same
# core nodes with these numbers.
KEEP_GROW, KEEP_BLUR, KEEP_SIGMA = -4, 4, 0.5
KEEP_FEATHER = KEEP_BLUR - KEEP_GROW  # px inside the region's edge where the drag fades into the input


def keep_composite(g, patch, image, decoded, x, image_slot=0):
    """Wires the pixel keeping after the decode and returns the node whose IMAGE to save.

    patch: the Propagation Patch (its `region` output, slot 1); image: the input image node (Load Image,
    the toy scene, or for a generated latent the VAE Decode of the original); decoded: the VAE Decode of
    the drag. Core nodes only: Grow Mask (negative: shrink) -> Convert Mask to Image -> Blur Image ->
    Convert Image to Mask (the feather) -> Image Composite Masked (destination: the input, source: the drag)."""
    grow = g.add("GrowMask", (x, 200), [KEEP_GROW, False], title="Keep: shrink the region")
    g.link(patch, 1, grow, "mask")
    as_image = g.add("MaskToImage", (x, 300))
    g.link(grow, 0, as_image, "mask")
    blur = g.add("ImageBlur", (x, 400), [KEEP_BLUR, KEEP_SIGMA], title="Keep: feather")
    g.link(as_image, 0, blur, "image")
    as_mask = g.add("ImageToMask", (x, 500), ["red"])
    g.link(blur, 0, as_mask, "image")
    comp = g.add("ImageCompositeMasked", (x + 360, 40), [0, 0, False], size=(320, 290),
                 title="Keep: input pixels outside the region")
    g.link(image, image_slot, comp, "destination")
    g.link(decoded, 0, comp, "source")
    g.link(as_mask, 0, comp, "mask")
    return comp


def drag_tail(g, model, clip_pos, clip_neg, vae, latent, image, x=900, mask=None, pos_slot=0, neg_slot=0,
              vae_slot=2, points=POINTS, iterations=60, lr=0.01, inversion_steps=35, r1=1, keep=None):
    """inversion -> points -> optimize -> patch -> KSampler Advanced -> decode -> save.

    mask: the node whose MASK (slot 1) is the editable region, or "points": the region painted in the
    Points editor (its MASK output). keep: wire keep_composite before Save (default: when a mask is
    linked), so that outside the region the saved image is `image`'s own pixels."""
    inv = g.add("DragNoiseInversion", (x, 40), [50, inversion_steps])
    g.link(model, 0, inv, "model")
    g.link(clip_pos, pos_slot, inv, "positive")
    g.link(latent, 0, inv, "latent")
    pts = g.add("DragNoisePoints", (x, 260), [points], size=(420, 520))
    g.link(image, 0, pts, "image")
    # trail_every 2, preview_every 20 (the node's defaults); low_memory False; band 0 (off)
    opt = g.add("DragNoiseOptimize", (x + 460, 40), [iterations, lr, 0.1, r1, 3, 2, 20, False, 0], size=(320, 220))
    g.link(model, 0, opt, "model")
    g.link(clip_pos, pos_slot, opt, "positive")
    g.link(inv, 1, opt, "inversion")
    g.link(pts, 0, opt, "points")
    if mask is not None:
        g.link(pts if mask == "points" else mask, 1, opt, "mask")
    patch = g.add("DragNoisePropagation", (x + 460, 330), [0, True])
    g.link(model, 0, patch, "model")
    g.link(opt, 0, patch, "bottleneck")
    ks = g.add("KSamplerAdvanced", (x + 820, 40),
               ["disable", 0, "fixed", 50, 1.0, "ddim", "ddim_uniform", 50 - inversion_steps, 10000, "disable"], size=(320, 340))
    g.link(patch, 0, ks, "model")
    g.link(clip_pos, pos_slot, ks, "positive")
    g.link(clip_neg, neg_slot, ks, "negative")
    g.link(inv, 0, ks, "latent_image")
    g.link(inv, 2, ks, "steps")
    g.link(inv, 3, ks, "start_at_step")
    dec = g.add("VAEDecode", (x + 1180, 40))
    g.link(ks, 0, dec, "samples")
    g.link(vae, vae_slot, dec, "vae")  # the checkpoint's VAE output
    out, save_x = dec, x + 1180
    if keep if keep is not None else mask is not None:
        out, save_x = keep_composite(g, patch, image, dec, x + 1180), x + 1540
    save = g.add("SaveImage", (save_x, 400), ["dragnoise"], size=(400, 420))
    g.link(out, 0, save, "images")
    return {"inversion": inv, "points": pts, "optimize": opt, "patch": patch, "decode": dec, "save": save}


def loaders(g, lora=False):
    ckpt = g.add("CheckpointLoaderSimple", (0, 40), [CKPT])
    model, clip = (ckpt, ckpt)
    if lora:
        lo = g.add("LoraLoader", (0, 220), ["your_image_lora.safetensors", 1.0, 1.0])
        g.link(ckpt, 0, lo, "model")
        g.link(ckpt, 1, lo, "clip")
        model, clip = lo, lo
    pos = g.add("CLIPTextEncode", (400, 40), ["a photo"], size=(400, 150))
    neg = g.add("CLIPTextEncode", (400, 240), [""], size=(400, 150))
    g.link(clip, 1, pos, "clip")
    g.link(clip, 1, neg, "clip")
    return ckpt, model, pos, neg


# the official UI's LoRA settings (rank 16, 60 steps, lr 5e-4, batch 4); 0.33's added settings at their defaults
TRAIN = {"batch_size": 4, "grad_accumulation_steps": 1, "steps": 60, "learning_rate": 0.0005, "rank": 16,
         "optimizer": "AdamW", "loss_function": "MSE", "seed": 0, "control_after_generate": "fixed",
         "training_dtype": "bf16", "lora_dtype": "bf16", "quantized_backward": False, "algorithm": "LoRA",
         "gradient_checkpointing": True, "checkpoint_depth": 1, "offloading": False, "existing_lora": "[None]",
         "bucket_mode": False, "bypass_mode": False}
LORA_FIT = "dragnoise_lora_fit.comfyui-{}.json"  # one file per interface of ComfyUI's training nodes
LORA_FIT_NOTES = {
    "0.3": "For ComfyUI 0.3.x (made on 0.3.75): there Train LoRA's first output is model_with_lora (a MODEL) "
           "and Load LoRA Model has no bypass switch. If your Train LoRA starts with a lora output instead "
           "(ComfyUI 0.33), open " + LORA_FIT.format("0.33") + ".\n\nRun it once: Train LoRA fits a LoRA "
           "to the image in Load Image (rank 16, 60 steps, lr 5e-4, batch 4) and the drag uses it.",
    "0.33": "For ComfyUI 0.33 and later releases with the same training nodes: there Train LoRA returns no MODEL "
            "(its first output is lora) and Load LoRA Model has a bypass switch. If your Train LoRA starts with "
            "a model_with_lora output instead (ComfyUI 0.3.x), open " + LORA_FIT.format("0.3") + ".\n\nRun it "
            "once: Train LoRA fits a LoRA to the image in Load Image (rank 16, 60 steps, lr 5e-4, batch 4) and "
            "the drag uses it.",
}


def real_photo(name, note, lora=False, mask=False, controlnet=False, lora_fit=None, comfy033=False):
    """lora_fit: the text of the Note that says which ComfyUI the LoRA-fit file is for."""
    g = Graph(dict(SPEC, **SPEC_033) if comfy033 else SPEC)
    ckpt, model, pos, neg = loaders(g, lora)
    img = g.add("LoadImage", (0, 440), ["example.png", "image"], size=(320, 360))
    enc = g.add("VAEEncode", (400, 460))
    g.link(img, 0, enc, "pixels")
    g.link(ckpt, 2, enc, "vae")
    if lora_fit:  # DragDiffusion-style fidelity: a LoRA fitted to this one image (official UI settings)
        rep = g.add("RepeatLatentBatch", (400, 570), [4])
        g.link(enc, 0, rep, "samples")
        # a list of latents: 0.3.75's TrainLoraNode fails on a single latent tensor
        split = g.add("RebatchLatents", (400, 690), [1])
        g.link(rep, 0, split, "latents")
        train = g.add("TrainLoraNode", (400, 810), [TRAIN[n] for n in g.spec["TrainLoraNode"][2]], size=(340, 420))
        g.link(ckpt, 0, train, "model")
        g.link(split, 0, train, "latents")
        g.link(pos, 0, train, "positive")
        fitted = g.add("LoraModelLoader", (400, 1260), [{"strength_model": 1.0, "bypass": False}[n]
                                                        for n in g.spec["LoraModelLoader"][2]])
        g.link(ckpt, 0, fitted, "model")
        g.link(train, [t for _, t in g.spec["TrainLoraNode"][1]].index("LORA_MODEL"), fitted, "lora")
        g.add("Note", (0, 900), [lora_fit], size=(320, 330), title="Which ComfyUI this file is for")
        model = fitted
    pos_out = neg_out = 0
    if controlnet:  # the same ControlNet conditioning feeds inversion, optimization and sampling
        cn = g.add("ControlNetLoader", (400, 570), ["control_v11p_sd15_canny.pth"])
        edges = g.add("Canny", (400, 700), [0.4, 0.8])
        g.link(img, 0, edges, "image")
        apply = g.add("ControlNetApplyAdvanced", (400, 850), [0.8, 0.0, 1.0], size=(320, 190))
        g.link(pos, 0, apply, "positive")
        g.link(neg, 0, apply, "negative")
        g.link(cn, 0, apply, "control_net")
        g.link(edges, 0, apply, "image")
        g.link(ckpt, 2, apply, "vae")
        pos = neg = apply
        pos_out, neg_out = 0, 1
    drag_tail(g, model, pos, neg, ckpt, enc, img, mask=img if mask else None, pos_slot=pos_out, neg_slot=neg_out)
    g.save(name, note)


def generated():
    g = Graph()
    ckpt, model, pos, neg = loaders(g)
    empty = g.add("EmptyLatentImage", (0, 440), [512, 512, 1])
    ks = g.add("KSampler", (400, 440), [42, "fixed", 50, 7.5, "ddim", "ddim_uniform", 1.0], size=(320, 300))
    g.link(model, 0, ks, "model")
    g.link(pos, 0, ks, "positive")
    g.link(neg, 0, ks, "negative")
    g.link(empty, 0, ks, "latent_image")
    dec = g.add("VAEDecode", (400, 800))  # only to show the image in the point editor
    g.link(ks, 0, dec, "samples")
    g.link(ckpt, 2, dec, "vae")
    # a region (Optimize's band, or one painted for the drag) keeps the rest: there the saved image is this
    # decoded original's pixels
    drag_tail(g, model, pos, neg, ckpt, ks, dec, keep=True)
    g.save("dragnoise_generated.json", "txt2img latent goes straight into the drag (no decode/encode round trip)")


SDXL_CKPT = "sd_xl_base_1.0.safetensors"


def sdxl():
    """SDXL family: CLIP Text Encode (SDXL) gives the pooled text and size embeddings SDXL's `y` is built from."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", (0, 40), [SDXL_CKPT])
    photo = g.add("LoadImage", (0, 220), ["example.png", "image"], size=(320, 360))
    # any picture (ComfyUI's own example.png is 768 px) becomes SDXL's native 1024 px before the drag
    img = g.add("ImageScale", (0, 600), ["lanczos", 1024, 1024, "center"], title="Upscale Image to 1024 px")
    g.link(photo, 0, img, "image")
    enc = g.add("VAEEncode", (0, 640))
    g.link(img, 0, enc, "pixels")
    g.link(ckpt, 2, enc, "vae")
    # original size = target size = the image's (1024 for SDXL's native resolution), no crop
    pos = g.add("CLIPTextEncodeSDXL", (400, 40), [1024, 1024, 0, 0, 1024, 1024, "a photo", "a photo"], size=(400, 360))
    neg = g.add("CLIPTextEncodeSDXL", (400, 440), [1024, 1024, 0, 0, 1024, 1024, "", ""], size=(400, 360))
    g.link(ckpt, 1, pos, "clip")
    g.link(ckpt, 1, neg, "clip")
    drag_tail(g, ckpt, pos, neg, ckpt, enc, img)
    g.save("dragnoise_sdxl.json", "SDXL family at its native 1024 px: the picture is scaled (center crop) to "
           "1024 x 1024 and CLIP Text Encode (SDXL) is given that size; handles in those pixels (Run once to see "
           "the scaled picture in the point editor), supervised at half resolution as with SD1.5")


TOY_SCENE, TOY_POINTS = DEMO_SCENE, json.dumps(DEMO_POINTS)  # a yellow disc on grey, dragged right
# The demo's editable region, painted in the Points editor: one stroke along the drag, wide enough to
# hold the disc (radius 42 at (56, 66) in scene 11 at 256 px) where it starts and where it should end.
TOY_REGION = {"size": [TOY_SIZE, TOY_SIZE], "strokes": [{"erase": False, "radius": 56, "points": [[56, 66], [108, 66]]}]}
TOY_DEMO_POINTS = json.dumps({"pairs": DEMO_POINTS, "region": TOY_REGION}, separators=(",", ":"))
TOY_NOTE = ("This demo runs every step of a DragNoise drag (inversion, optimization, propagation) on a tiny "
            "model bundled with the pack, with no SD weights. The disc moves most of the way to the target (here "
            "38 of 52 px), blob-shaped rather than round. On 60 measured cases DragNoise moves shapes 81% of the "
            "drag on average; a third stop short and 7 of 75 shapes fade (bench/RESULTS.md). Optimize's r1 (24), "
            "lr (0.07), iterations (150) and editing step (30 of 50) are the toy's own; the node defaults are the "
            "official ones.\n\n"
            "The green area in the points editor is the region that may change; outside it the saved image is "
            "the scene's own pixels (the Keep nodes). To paint it: press Paint (or B) and drag over the image; "
            "Erase (E, or right-drag) takes it back; the slider ([ and ]) sets the brush size; Clear region "
            "lets the whole image change; Points (P) goes back to placing handles. For real drags, load an SD1.5 "
            "checkpoint and open dragnoise_real_photo.json.")


def toy_demo():
    """Runs anywhere: the toy model (trained on flat shapes, weights in the repo) and a seeded toy scene."""
    g = Graph()
    toy = g.add("DragNoiseToyModelLoader", (0, 40), [], size=(320, 120))
    scene = g.add("DragNoiseToyScene", (0, 220), [TOY_SCENE, TOY_SIZE], size=(320, 110))
    enc = g.add("VAEEncode", (400, 220))
    g.link(scene, 0, enc, "pixels")
    g.link(toy, 1, enc, "vae")
    g.add("Note", (0, 400), [TOY_NOTE], size=(320, 330), title="What this demo shows")
    # the settings the toy needs (dragnoise_toy.model.DEMO_*; the node defaults stay official); the region
    # painted in the editor feeds Optimize's mask, and keeping (the Patch's switch, the Keep nodes) is on
    drag_tail(g, toy, toy, toy, toy, enc, scene, x=500, pos_slot=2, neg_slot=2, vae_slot=1, points=TOY_DEMO_POINTS,
              iterations=DEMO_ITERATIONS, lr=DEMO_LR, inversion_steps=DEMO_INVERSION_STEPS, r1=DEMO_R1, mask="points")
    g.save("dragnoise_toy_demo.json", "No SD weights needed: a tiny model trained on flat shapes (DragNoise/demo "
           "(testing) nodes). It runs every step of a drag and moves the disc most of the way (see the Note)")


def load_object_info(source: str) -> dict:
    """A ComfyUI's /object_info: from its address (http://127.0.0.1:8188) or a saved copy."""
    if source.startswith("http"):
        from urllib.request import urlopen
        with urlopen(source.rstrip("/") + "/object_info", timeout=60) as r:
            return json.loads(r.read())
    return json.loads(Path(source).read_text())


# For tests and pictures that run a shipped workflow through the server without the frontend.
FRONTEND_ONLY = {"control_after_generate", "upload"}  # widgets the frontend keeps out of the API prompt


def api_prompt(wf: dict) -> dict:
    """UI format -> API format as the frontend converts it: each widget value under its input name, each
    link as [node, slot]."""
    out = {}
    for n in wf["nodes"]:
        widgets = [(w, v) for w, v in zip(SPEC[n["type"]][2], n["widgets_values"]) if w not in FRONTEND_ONLY]
        out[str(n["id"])] = {"class_type": n["type"], "inputs": dict(widgets)}
    for _, src, slot, dst, dst_slot, _ in wf["links"]:
        node = next(n for n in wf["nodes"] if n["id"] == dst)
        out[str(dst)]["inputs"][node["inputs"][dst_slot]["name"]] = [str(src), slot]
    return out


def on_the_toy(prompt: dict, image: str, points: str = TOY_POINTS, iterations: int = DEMO_ITERATIONS) -> dict:
    """An SD1.5 workflow's API prompt with the checkpoint and text encoders replaced by the bundled toy
    (MODEL, VAE, its constant conditioning) at the demo's settings, Load Image reading `image`."""
    ckpt = next(k for k, n in prompt.items() if n["class_type"] == "CheckpointLoaderSimple")
    texts = {k for k, n in prompt.items() if n["class_type"] == "CLIPTextEncode"}
    out = {"toy": {"class_type": "DragNoiseToyModelLoader", "inputs": {}}}
    for k, n in prompt.items():
        if k == ckpt or k in texts:
            continue
        for name, v in n["inputs"].items():
            if isinstance(v, list) and v[0] == ckpt:
                n["inputs"][name] = ["toy", {0: 0, 2: 1}[v[1]]]  # MODEL, VAE (CLIP fed only the text encoders)
            elif isinstance(v, list) and v[0] in texts:
                n["inputs"][name] = ["toy", 2]
        n["inputs"].update({"LoadImage": {"image": image}, "DragNoisePoints": {"points": points},
                            "DragNoiseInversion": {"inversion_steps": DEMO_INVERSION_STEPS},
                            "DragNoiseOptimize": {"iterations": iterations, "lr": DEMO_LR, "r1": DEMO_R1}}
                           .get(n["class_type"], {}))
        out[k] = n
    return out


if __name__ == "__main__":
    if "--object-info" in sys.argv:
        OBJECT_INFO.update(load_object_info(sys.argv[sys.argv.index("--object-info") + 1]))
    OUT.mkdir(exist_ok=True)
    real_photo("dragnoise_real_photo.json", "Load Image -> VAE Encode -> DragNoise; set points on the canvas")
    real_photo("dragnoise_real_photo_mask.json", "Paint the editable region with the mask editor on Load Image",
               mask=True)
    real_photo("dragnoise_lora.json", "A LoRA fitted to this image (DragDiffusion-style) loaded before the drag",
               lora=True)
    real_photo(LORA_FIT.format("0.3"), "ComfyUI 0.3.x: fit a LoRA to the image with ComfyUI's training nodes "
               "(rank 16, 60 steps, lr 5e-4, batch 4), then drag with it (real-photo fidelity)",
               lora_fit=LORA_FIT_NOTES["0.3"])
    real_photo(LORA_FIT.format("0.33"), "ComfyUI 0.33: fit a LoRA to the image with ComfyUI's training nodes "
               "(rank 16, 60 steps, lr 5e-4, batch 4), then drag with it (real-photo fidelity)",
               lora_fit=LORA_FIT_NOTES["0.33"], comfy033=True)
    real_photo("dragnoise_controlnet.json", "A Canny ControlNet on the conditioning: its middle residual is "
               "added on top of the injected bottleneck", controlnet=True)
    generated()
    toy_demo()
    sdxl()
    print("wrote", sorted(p.name for p in OUT.glob("*.json")))
