"""Interactive speed through ComfyUI's own executor: the first drag and a re-drag (new points, cached inversion).

    python bench/redrag.py --device cuda --json out.json      # SD1.5 architecture, 512 px, fp16 (issue 24)
    python bench/redrag.py --device cpu --layout shallow --size 128 --iterations 5 --steps 10   # smoke test

The pack is loaded into ComfyUI's PromptExecutor in this process, as ComfyUI's prompt worker runs it (no
HTTP server, no frontend: nothing the timing needs). Models are written to a temporary models folder
with seeded random weights, the architectures ComfyUI loads as SD1.5: the UNet (full layout), the SD VAE
(its full decoder: VAE Decode is part of every drag) and a CLIP-L. Speed does not depend on weights; the
drag's result does, so the handles never arrive and every run takes all its iterations.

Runs, in order: a warm-up prompt (loads the models; not reported), the first drag on a new image
(encode, inversion, optimization, propagation, decode), then re-drags with new points, eager and with
the optimization replayed as a CUDA graph (DRAGNOISE_CUDA_GRAPHS=1), alternating. A sampling-only
prompt (a new noise_seed: add_noise is off, so only KSampler Advanced and VAE Decode run again) splits a
re-drag into optimization and propagation + decode. On CUDA it then checks GPU memory after a Cancel
mid-optimization and after an out-of-memory error inside it (a per-process memory cap), and that the
next drag runs. Prints a table; --json writes every figure.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests", ROOT / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import torch  # noqa: E402
from drag_args import drag_arguments  # noqa: E402

from dragnoise_toy.comfy_env import import_comfy  # noqa: E402

# imported by ComfyUI's executor and node modules but unused on this path; stubbed where absent (--stub-missing)
EXECUTOR_STUBBABLE = ("av", "aiohttp", "yarl", "kornia", "spandrel")


class QuietServer:
    """What PromptExecutor needs of ComfyUI's PromptServer when no client is connected."""
    client_id = None
    last_node_id = None
    last_prompt_id = None

    def __getattr__(self, name):  # send_sync, send_progress_text, queue_updated...
        return lambda *a, **k: None


def sd_vae_state_dict(seed: int = 0, dtype=torch.float16) -> dict:
    """The SD1.x VAE (KL-f8, 4 latent channels) with seeded random weights, keyed as checkpoints hold it."""
    import comfy.ops
    import tiny_sd15
    from comfy.ldm.modules.diffusionmodules.model import Decoder, Encoder
    cfg = dict(double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=128, ch_mult=[1, 2, 4, 4],
               num_res_blocks=2, attn_resolutions=[], dropout=0.0)
    ops = comfy.ops.disable_weight_init
    parts = {"encoder": Encoder(**cfg), "decoder": Decoder(**cfg), "quant_conv": ops.Conv2d(8, 8, 1),
             "post_quant_conv": ops.Conv2d(4, 4, 1)}
    sd = {}
    for name, module in parts.items():
        tiny_sd15.seeded_init_(module, seed)
        sd.update({f"{name}.{k}": v.to(dtype).contiguous() for k, v in module.state_dict().items()})
    return sd


def write_models(models: Path, layout: str, dtype) -> dict:
    import safetensors.torch
    import tiny_sd15
    names = tiny_sd15.write_test_models(models)  # CLIP-L (and the shallow UNet the tests use)
    if layout == "full":
        names["unet"] = "dragnoise_random_sd15_full.safetensors"
        safetensors.torch.save_file(tiny_sd15.unet_state_dict(tiny_sd15.FULL, dtype=dtype),
                                    str(models / "diffusion_models" / names["unet"]))
    (models / "vae").mkdir(parents=True, exist_ok=True)
    names["vae"] = "dragnoise_random_sd_vae.safetensors"
    safetensors.torch.save_file(sd_vae_state_dict(dtype=dtype), str(models / "vae" / names["vae"]))
    return names


def points_for(size: int, k: int) -> list:
    """A drag of a quarter of the image, rotated by k (a new one per re-drag)."""
    import math
    c, r, a = size / 2, size / 4, k * 0.7
    h = [round(c - r * math.cos(a) / 2), round(c - r * math.sin(a) / 2)]
    return [{"handle": h, "target": [round(h[0] + r * math.cos(a)), round(h[1] + r * math.sin(a))]}]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    drag_arguments(ap)
    ap.add_argument("--redrags", type=int, default=3, help="re-drags per mode (eager, graph)")
    ap.add_argument("--stub-missing", action="store_true", help="stand in for absent packages the timing never uses")
    ap.add_argument("--faults", action="store_true", help="also check memory after Cancel and out-of-memory (CUDA)")
    ap.add_argument("--comfy-args", default="", help="more ComfyUI options, e.g. '--fast' or '--use-split-cross-attention'")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    from dragnoise_toy import comfy_env
    comfy_env.STUBBABLE = tuple(comfy_env.STUBBABLE) + EXECUTOR_STUBBABLE
    env = import_comfy(a.device, stub_missing=a.stub_missing, extra_args=tuple(a.comfy_args.split()))
    sys.path.insert(0, env["comfy"])  # ComfyUI's nodes.py before this repository's nodes/ package
    import comfy.model_management as mm
    import execution
    import folder_paths
    import graphs
    import nodes
    dtype = torch.float16 if a.device == "cuda" else torch.float32
    work = Path(tempfile.mkdtemp(prefix="dragnoise_redrag_"))
    models = work / "models"
    t0 = time.perf_counter()
    names = write_models(models, a.layout, dtype)
    for kind, sub in (("diffusion_models", "diffusion_models"), ("text_encoders", "text_encoders"), ("vae", "vae"),
                      ("vae_approx", "vae_approx")):
        folder_paths.add_model_folder_path(kind, str(models / sub))
    folder_paths.set_input_directory(str(work / "input"))
    folder_paths.set_output_directory(str(work / "output"))
    (work / "input").mkdir()
    for k in range(3):  # the warm-up's image, the first drag's and a spare
        graphs.write_test_image(work / "input" / f"image{k}.png", a.size)
    # the pack, under its published folder name, as ComfyUI's custom_nodes/ would hold it
    (work / "custom_nodes").mkdir()
    os.symlink(ROOT, work / "custom_nodes" / "comfyui-dragnoise")
    if not asyncio.run(nodes.load_custom_node(str(work / "custom_nodes" / "comfyui-dragnoise"))):
        raise SystemExit("the pack did not load (see the log above)")
    log = print
    log(f"models written and pack loaded in {time.perf_counter() - t0:.0f} s; ComfyUI at {env['comfy']}, "
        f"stubbed: {env['stubbed'] or 'nothing'}")
    executor = execution.PromptExecutor(QuietServer(), cache_type=execution.CacheType.CLASSIC,
                                          cache_args=collections.defaultdict(float))  # 0 for every size the versions ask
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    sources = graphs.loaders()
    sources["unet"]["inputs"]["unet_name"] = names["unet"]
    sources["clip"]["inputs"]["clip_name"] = names["clip"]
    sources["vae"]["inputs"]["vae_name"] = names["vae"]

    def prompt(image: int, points: list, seed: int = 0) -> dict:
        src = {**sources, "image": {"class_type": "LoadImage", "inputs": {"image": f"image{image}.png"}}}
        p = graphs.drag_prompt(points, steps=a.steps, inversion_steps=a.inversion_steps, iterations=a.iterations,
                               sources=(src, graphs.SD_REFS))
        p["sample"]["inputs"]["noise_seed"] = seed
        p["save"] = {"class_type": "PreviewImage", "inputs": {"images": ["decode", 0]}}
        return p

    def run(p: dict, graph: bool = False) -> float:
        os.environ["DRAGNOISE_CUDA_GRAPHS"] = "1" if graph else "0"
        sync()
        start = time.perf_counter()
        executor.execute(p, f"redrag-{time.monotonic_ns()}", {}, ["save"])
        sync()
        if not executor.success:
            raise SystemExit(f"the prompt failed: {[m for m in executor.status_messages if m[0] == 'execution_error']}")
        return time.perf_counter() - start

    out = {"device": torch.cuda.get_device_name() if a.device == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "comfyui": env["comfy"], "comfy_args": a.comfy_args, "layout": a.layout,
           "size": a.size, "steps": a.steps, "inversion_steps": a.inversion_steps, "iterations": a.iterations,
           "dtype": str(dtype).replace("torch.", ""), "stubbed": env["stubbed"]}
    out["warmup_seconds"] = run(prompt(0, points_for(a.size, 0)))
    log(f"warm-up (loads the models) {out['warmup_seconds']:.2f} s")
    out["first_drag_seconds"] = run(prompt(1, points_for(a.size, 1)))
    log(f"first drag (encode, inversion, optimization, propagation, decode) {out['first_drag_seconds']:.2f} s")
    times, last = {"eager": [], "graph": []}, None
    for k in range(a.redrags):
        for mode in ("eager", "graph"):
            last = points_for(a.size, 2 + 2 * k + (mode == "graph"))
            times[mode].append(run(prompt(1, last), mode == "graph"))
            log(f"re-drag {mode} {times[mode][-1]:.3f} s")
    # the last re-drag's points again with a new seed: its optimization is cached, only sampling and decode run
    sampling = [run(prompt(1, last, seed=s)) for s in (1, 2, 3)]
    out["eager_redrag_seconds"] = statistics.median(times["eager"])
    out["graph_redrag_seconds"] = statistics.median(times["graph"])
    out["redrag_seconds"] = min(out["eager_redrag_seconds"], out["graph_redrag_seconds"])
    out["propagation_and_decode_seconds"] = statistics.median(sampling)
    out["redrag_runs"] = times
    for mode in ("eager", "graph"):
        out[f"{mode}_optimization_seconds"] = out[f"{mode}_redrag_seconds"] - out["propagation_and_decode_seconds"]
    out["inversion_and_encode_seconds"] = out["first_drag_seconds"] - out["eager_redrag_seconds"]
    if a.iterations > 1:  # the same optimization eager and replayed, on the UNet ComfyUI has loaded (no graph on a CPU)
        out["engine"] = engine_check(mm, a, sync)
        log(f"engine: {json.dumps(out['engine'])}")
    if a.faults and a.device == "cuda":
        out["faults"] = faults(run, prompt, a, mm)
        log(f"faults: {json.dumps(out['faults'])}")
    rows = ["| phase | eager | CUDA graph |", "|---|---|---|",
            f"| first drag (encode + inversion + the rest, eager) | {out['first_drag_seconds']:.3f} s | |",
            f"| re-drag: optimization ({a.iterations} iterations) | {out['eager_optimization_seconds']:.3f} s | "
            f"{out['graph_optimization_seconds']:.3f} s |",
            f"| re-drag: propagation ({a.inversion_steps} steps) + VAE decode | "
            f"{out['propagation_and_decode_seconds']:.3f} s | (eager) |",
            f"| **re-drag, whole prompt** | **{out['eager_redrag_seconds']:.3f} s** | "
            f"**{out['graph_redrag_seconds']:.3f} s** |"]
    out["table"] = "\n".join(rows)
    print(f"\n{out['device']}, {a.layout} SD1.5 layout, {a.size} px, {out['dtype']}\n" + out["table"])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return out


def engine_check(mm, a, sync) -> dict:
    """One optimization of the loaded UNet, eager then captured: per-iteration time of each, whether the
    capture happened, and how far the results are apart (fp16: equal up to rounding)."""
    from dragnoise import DecoderReplay, DragConfig, optimize_bottleneck
    patcher = next(m.model for m in mm.current_loaded_models if hasattr(m.model.model, "diffusion_model"))
    unet = patcher.model.diffusion_model
    dev, dtype = next(unet.parameters()).device, next(unet.parameters()).dtype
    g = torch.Generator().manual_seed(0)
    lat = a.size // 8
    x = torch.randn(1, 4, lat, lat, generator=g).to(dev, dtype)
    ctx = torch.randn(1, 77, 768, generator=g).to(dev, dtype)
    replay = DecoderReplay(unet)
    with torch.inference_mode():
        unet(x, torch.tensor([681.0], device=dev), ctx, transformer_options=replay.recording_options({}, ctx, None))
    grid = (a.size // 2, a.size // 2)
    h = [(grid[1] * 0.3, grid[0] * 0.5)]
    t = [(grid[1] * 0.6, grid[0] * 0.5)]
    res = {}
    with torch.inference_mode(False), torch.enable_grad(), replay:
        for capture in (None, "graph", None, "graph"):  # the second round is the one reported (warm)
            sync()
            start = time.perf_counter()
            r = optimize_bottleneck(replay.decode, replay.bottleneck, h, t,
                                    DragConfig(iterations=a.iterations, stop_distance=-1.0), grid=grid, capture=capture)
            sync()
            res[capture or "eager"] = (time.perf_counter() - start, r)
    (te, eager), (tg, graph) = res["eager"], res["graph"]
    return {"eager_iteration_ms": 1e3 * te / a.iterations, "graph_iteration_ms": 1e3 * tg / a.iterations,
            "captured": graph.captured, "same_handles": graph.handles == eager.handles,
            "bottleneck_max_diff": float((graph.bottleneck.float() - eager.bottleneck.float()).abs().max()),
            "bottleneck_change": float((eager.bottleneck.float() - replay.bottleneck.float()).abs().max()),
            "loss_first_last": [eager.losses[0], eager.losses[-1], graph.losses[0], graph.losses[-1]]}


def faults(run, prompt, a, mm) -> dict:
    """GPU memory ComfyUI reports before a drag, after a Cancel mid-optimization and after an
    out-of-memory error inside it; and whether the next drag runs."""
    dev = mm.get_torch_device()
    res = {}

    def free():
        torch.cuda.synchronize()
        return mm.get_free_memory(dev)
    res["free_before"] = free()
    # Cancel: ComfyUI's interrupt flag, set while the optimization runs (after the cached inversion)
    timer = threading.Timer(0.15, mm.interrupt_current_processing, (True,))
    timer.start()
    try:
        run(prompt(1, points_for(a.size, 20)))
        res["cancel"] = "finished before the Cancel"
    except SystemExit as e:
        res["cancel"] = str(e)[:300]
    mm.interrupt_current_processing(False)
    res["free_after_cancel"] = free()
    res["allocated_after_cancel"] = torch.cuda.memory_allocated()
    # out of memory: cap this process just above what is allocated now, so the optimization cannot fit
    # (ComfyUI's free-memory figure does not see the cap: the refusal passes and the real OOM happens)
    total = torch.cuda.get_device_properties(dev).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + (64 << 20)) / total))
    try:
        run(prompt(1, points_for(a.size, 21)))
        res["oom"] = "no out-of-memory error"
    except SystemExit as e:
        res["oom"] = str(e)[:300]
    torch.cuda.set_per_process_memory_fraction(1.0)
    res["free_after_oom"] = free()
    res["next_drag_seconds"] = run(prompt(1, points_for(a.size, 22)))
    res["free_after_next"] = free()
    return res


if __name__ == "__main__":
    main()
