"""SDXL speed and memory: one whole DragNoise edit on ComfyUI's SDXL model class (bench/run.py --model sdxl).

The model is model_base.SDXL built from ComfyUI's supported-models entry (tests/tiny_sdxl.py): the full
SDXL base architecture (2.6B parameters) or the reduced Segmind-Vega-layout test model, seeded random
weights made under inference mode as the loaders make them. Conditioning is SDXL's: a 2048-wide context
and y = pooled text embedding + size embeddings (model_base.SDXL.encode_adm). Per size it times one
full UNet forward (the unit), the inversion, one optimization iteration and the propagation, and the
peak memory of the whole edit (inversion -> recorded step -> optimization -> propagation) above the
resident weights, which it reports too.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "tests"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from bench.measure import INVERTED, STEPS, PeakMemory, StepClock, drag_points, propagate, timed  # noqa: E402


def build(layout: str, dtype, device):
    import tiny_sdxl
    with torch.inference_mode():  # inference-tensor weights, as ComfyUI's loaders create them
        model = tiny_sdxl.build_model({"full": tiny_sdxl.FULL, "vega": tiny_sdxl.VEGA}[layout], dtype=dtype)
        model.diffusion_model.to(device, dtype)
    return model


def bench_size(model, device, size: int, iterations: int, sample_steps: int, repeats: int, log) -> dict:
    import comfy.samplers
    from dragnoise import DecoderReplay, DragConfig, ddim_invert, inversion_sigmas, optimize_bottleneck
    unet, ms = model.diffusion_model, model.model_sampling
    dtype = unet.dtype
    lat = size // 8
    g = torch.Generator().manual_seed(size)
    x0 = torch.randn(1, 4, lat, lat, generator=g).to(device)
    ctx = torch.randn(1, 77, 2048, generator=g).to(device, dtype)
    with torch.inference_mode():
        y = model.encode_adm(pooled_output=torch.randn(1, 1280, generator=g), width=size, height=size).to(device, dtype)
    sched = [float(s) for s in comfy.samplers.calculate_sigmas(ms, "ddim_uniform", STEPS)]
    start = STEPS - INVERTED
    sigma = sched[start]
    t_in = ms.timestep(torch.tensor([sigma])).to(device)
    out = {"size": size, "latent": lat, "iterations_timed": iterations, "sample_steps_run": sample_steps}

    def denoise(x, s, to=None):
        return model.apply_model(x, torch.full((1,), s, device=device), c_crossattn=ctx, y=y,
                                 transformer_options=to or {})

    xin = (x0 / (1 + sigma ** 2) ** 0.5).to(dtype)
    with torch.inference_mode():
        unet(xin, t_in, ctx, y)  # warm-up
        times = [timed(device, lambda: unet(xin, t_in, ctx, y))[0] for _ in range(repeats)]
    fwd = out["unet_forward_s"] = statistics.median(times)
    log(f"  {size}px: UNet forward {fwd * 1e3:.0f} ms")

    grid = (lat * 4, lat * 4)  # half the image: handles in image pixels / 2, as the node does
    handles, targets = drag_points(grid[1], grid[0])
    cfg = DragConfig(iterations=iterations, lr=0.01, lam=0.1, stop_distance=-1.0)
    with PeakMemory(device) as edit:
        path = inversion_sigmas(sched, INVERTED, float(ms.sigma_min))
        with torch.inference_mode():
            t_inv, xt = timed(device, lambda: ddim_invert(denoise, x0, path[: sample_steps + 1]))
        out["inversion_s"] = t_inv * INVERTED / sample_steps
        if sample_steps != INVERTED:
            xt = x0 + sigma * torch.randn(x0.shape, generator=g).to(device)  # timing run: stand-in latent
        log(f"  inversion {out['inversion_s']:.1f} s")
        replay = DecoderReplay(unet)
        with torch.inference_mode():
            unet((xt / (1 + sigma ** 2) ** 0.5).to(dtype), t_in, ctx, y,
                 transformer_options=replay.recording_options({}, ctx, None, y))
        bh, bw = replay.bottleneck.shape[-2:]
        keep = torch.ones(1, 1, bh, bw, device=device)
        keep[..., bh // 4: 3 * bh // 4, bw // 4: 3 * bw // 4] = 0
        clock = StepClock(device)
        with torch.inference_mode(False), torch.enable_grad(), replay:
            r = optimize_bottleneck(replay.decode, replay.bottleneck, handles, targets, cfg, keep, clock, grid=grid)
        out["dragnoise_iter_s"] = clock.per_step()
        log(f"  DragNoise iteration {out['dragnoise_iter_s'] * 1e3:.0f} ms")
        del replay
        with torch.inference_mode():
            t_prop, _ = timed(device, lambda: propagate(denoise, xt, r.bottleneck, sched, start, sample_steps))
        out["propagation_s"] = t_prop * INVERTED / sample_steps
    with torch.inference_mode():  # the machine may be shared: a second unit after the edit shows drift
        out["unet_forward_after_s"] = statistics.median(
            [timed(device, lambda: unet(xin, t_in, ctx, y))[0] for _ in range(repeats)])
    out["edit_peak_above_weights_mb"] = edit.peak / 2 ** 20
    out["weights_mb"] = sum(p.numel() * p.element_size() for p in unet.parameters()) / 2 ** 20
    out["edit_peak_total_mb"] = out["weights_mb"] + out["edit_peak_above_weights_mb"]
    out["dragnoise_iter_fwd"] = out["dragnoise_iter_s"] / fwd
    out["inversion_fwd"] = out["inversion_s"] / fwd
    out["propagation_fwd"] = out["propagation_s"] / fwd
    log(f"  propagation {out['propagation_s']:.1f} s, edit peak {out['edit_peak_total_mb']:.0f} MB")
    return out


def table(results: list[dict]) -> str:
    rows = ["| size | UNet fwd (before / after) | inversion (35 st.) | DragNoise iter | propagation (35 st.) | "
            "whole edit peak: weights + above | total |", "|" + "---|" * 7]
    for r in results:
        rows.append(f"| {r['size']} px | {r['unet_forward_s'] * 1e3:.0f} / {r['unet_forward_after_s'] * 1e3:.0f} ms | "
                    f"{r['inversion_s']:.1f} s "
                    f"({r['inversion_fwd']:.1f} fwd) | {r['dragnoise_iter_s'] * 1e3:.0f} ms "
                    f"(**{r['dragnoise_iter_fwd']:.2f} fwd**) | {r['propagation_s']:.1f} s ({r['propagation_fwd']:.1f} fwd) | "
                    f"{r['weights_mb']:.0f} + {r['edit_peak_above_weights_mb']:.0f} MB | "
                    f"{r['edit_peak_total_mb'] / 1024:.2f} GB |")
    return "\n".join(rows)


def run(layout: str, sizes, device, dtype, iterations: int, sample_steps: int, repeats: int, log) -> dict:
    t0 = time.perf_counter()
    log(f"building {layout} SDXL (model_base.SDXL, seeded random weights) on {device}, {dtype} ...")
    model = build(layout, dtype, device)
    params = sum(p.numel() for p in model.diffusion_model.parameters())
    log(f"  {params / 1e9:.2f}B parameters, built in {time.perf_counter() - t0:.0f} s")
    results = [bench_size(model, device, s, iterations, sample_steps, repeats, log) for s in sizes]
    return {"model": "sdxl", "layout": layout, "unet_params": params, "results": results,
            "table": table(results)}


def count(layout: str, size: int, dtype=torch.float16) -> dict:
    """Machine-independent numbers on the meta device (no weights, no compute): FLOPs of a full forward
    and of one DragNoise iteration (replay forward + backward to the bottleneck), and the bytes autograd
    saves for that backward, split into attention probabilities (saved only by math attention; CUDA's
    flash / memory-efficient SDPA keeps O(tokens)), weight references (no new memory) and activations."""
    import comfy.ldm.modules.attention as attention
    import comfy.ops
    import tiny_sdxl
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    from torch.utils.flop_counter import FlopCounterMode
    from dragnoise import DecoderReplay
    from dragnoise.memory import saved_tensor_bytes
    attention.optimized_attention = attention.attention_pytorch  # ComfyUI's choice on CUDA
    unet = UNetModel(**tiny_sdxl.unet_config({"full": tiny_sdxl.FULL, "vega": tiny_sdxl.VEGA}[layout]), dtype=dtype,
                     operations=comfy.ops.disable_weight_init, device="meta")
    lat, meta = size // 8, dict(device="meta", dtype=dtype)
    x, ctx, y = torch.empty(1, 4, lat, lat, **meta), torch.empty(1, 77, 2048, **meta), torch.empty(1, 2816, **meta)
    replay = DecoderReplay(unet)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        unet(x, torch.tensor([681.0], device="meta"), ctx, y,
             transformer_options=replay.recording_options({}, ctx, None, y))
    b = replay.bottleneck.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as it:
        parts = saved_tensor_bytes(lambda: replay.decode(b))  # the count the Optimize node makes
        f = parts.pop("out")
        f.float().sum().backward()
    # the optimize node's default (as the official code) upsamples the feature to the half-resolution
    # grid every step: that map and its gradient exist at once; low_memory samples the small feature
    upsampled = 2 * f.shape[1] * (size // 2) ** 2 * dtype.itemsize
    replayed = sum(p.numel() for blk in unet.output_blocks[: replay.index + 1] for p in blk.parameters())
    params = sum(p.numel() for p in unet.parameters())
    gib = 2 ** 30
    return {"size": size, "layout": layout, "dtype": str(dtype).replace("torch.", ""),
            "forward_tflop": fc.get_total_flops() / 1e12, "iteration_tflop": it.get_total_flops() / 1e12,
            "iteration_fwd": it.get_total_flops() / fc.get_total_flops(),
            "upsampled_feature_gib": upsampled / gib, "weights_gib": params * dtype.itemsize / gib, "replayed_weight_copies_gib": replayed * dtype.itemsize / gib,
            **{f"saved_{k}_gib": v / gib for k, v in parts.items()}}


def whole_edit_bytes(counts: dict, low_memory: bool = False) -> int:
    """A whole edit from count(): the loaded weights plus what the optimization adds (the Optimize
    node's refusal counts the latter on the loaded model: dragnoise.memory.optimization_bytes)."""
    total = counts["weights_gib"] + counts["replayed_weight_copies_gib"] + counts["saved_activations_gib"]
    if not low_memory:
        total += counts["upsampled_feature_gib"]
    return int(total * 2 ** 30)


if __name__ == "__main__":
    import argparse
    from dragnoise_toy.comfy_env import import_comfy
    from dragnoise.memory import GIB
    ap = argparse.ArgumentParser(description="FLOPs and saved-tensor memory of a DragNoise iteration on SDXL (meta device)")
    ap.add_argument("--sizes", default="1024")
    ap.add_argument("--layout", choices=["full", "vega"], default="full")
    a = ap.parse_args()
    import_comfy("cpu")
    print("| size | forward | iteration (replay fwd + bwd) | weights | replayed blocks' grad-safe copies | "
          "saved activations | attention probs (math attention only) | estimate: weights + copies + activations "
          "(low_memory) | + feature upsampled to the grid (default) |")
    print("|" + "---|" * 9)
    for s in (int(v) for v in a.sizes.split(",")):
        r = count(a.layout, s)
        total = whole_edit_bytes(r, low_memory=True) / GIB
        print(f"| {s} px | {r['forward_tflop']:.2f} TFLOP | {r['iteration_tflop']:.2f} TFLOP (**{r['iteration_fwd']:.2f} fwd**) | "
              f"{r['weights_gib']:.2f} GiB | {r['replayed_weight_copies_gib']:.2f} GiB | {r['saved_activations_gib']:.2f} GiB | "
              f"{r['saved_attention_gib']:.2f} GiB | {total:.1f} GiB | {whole_edit_bytes(r) / GIB:.1f} GiB |")
