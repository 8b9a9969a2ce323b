"""DragNoise vs DragDiffusion speed benchmark on an SD1.5-architecture UNet.

    python bench/run.py [--quick] [--sizes 256,512] [--device cpu|cuda] [--json out.json]

Weights are seeded random (speed does not depend on them); the UNet is loaded
the way ComfyUI loads one (comfy.sd, inference-mode weights, fp16 on CUDA, fp32
on CPU). Per image size it times, in one process:

  * one full UNet forward (batch 1, no guidance), the unit for the rest;
  * DragNoise: DDIM inversion (35 of 50 steps), one bottleneck optimization
    iteration (decoder replay bottleneck -> third decoder level, forward +
    backward, alignment + mask loss, handle tracking), propagation (35 denoising
    steps with the optimized bottleneck injected);
  * DragDiffusion (bench/dragdiffusion.py): one latent optimization iteration
    (whole UNet forward + backward, same feature, loss and tracking);
  * peak memory of each optimization, above what was resident before it.

--quick runs a tiny case (shallow UNet, 64 px, 3 iterations, 1 sampling step) as a smoke test.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.measure import INVERTED, STEPS, PeakMemory, StepClock, drag_points, propagate, timed  # noqa: E402,F401
from dragnoise_toy.comfy_env import import_comfy  # noqa: E402


# --- the benchmark --------------------------------------------------------------------------------
def build_model(layout_name: str, device):
    import comfy.model_management as mm
    import tiny_sd15
    layout = {"full": tiny_sd15.FULL, "shallow": tiny_sd15.SHALLOW}[layout_name]
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    sd = tiny_sd15.unet_state_dict(layout, seed=0, dtype=dtype)
    patcher = tiny_sd15.load_model(sd)
    del sd
    if device.type == "cuda":
        with torch.inference_mode():  # as ComfyUI's samplers load it: inference-tensor weights on the GPU
            mm.load_models_gpu([patcher], force_full_load=True)
    bm = patcher.model
    return patcher, bm



def bench_size(bm, device, size: int, iterations: int, sample_steps: int, repeats: int, log) -> dict:
    import comfy.samplers
    from bench.dragdiffusion import FullUNet, optimize_latent
    from dragnoise import DecoderReplay, DragConfig, ddim_invert, inversion_sigmas, optimize_bottleneck
    import torch.nn.functional as F

    unet, ms = bm.diffusion_model, bm.model_sampling
    dtype = unet.dtype
    lat = size // 8
    g = torch.Generator().manual_seed(size)
    x0 = torch.randn(1, 4, lat, lat, generator=g).to(device)
    noise = torch.randn(1, 4, lat, lat, generator=g).to(device)
    ctx = torch.randn(1, 77, 768, generator=g).to(device, dtype)
    sched = [float(s) for s in comfy.samplers.calculate_sigmas(ms, "ddim_uniform", STEPS)]
    start = STEPS - INVERTED
    sigma = sched[start]
    out = {"size": size, "latent": lat, "iterations_timed": iterations, "sample_steps_run": sample_steps}

    def denoise(x, s, to=None):
        return bm.apply_model(x, torch.full((1,), s, device=device), c_crossattn=ctx, transformer_options=to or {})

    # 1. the unit: one full UNet forward
    xin = (x0 / (1 + sigma ** 2) ** 0.5).to(dtype)
    t_in = ms.timestep(torch.tensor([sigma])).to(device)
    with torch.inference_mode():
        unet(xin, t_in, ctx)  # warm-up (kernels, allocator)
        times = [timed(device, lambda: unet(xin, t_in, ctx))[0] for _ in range(repeats)]
        with PeakMemory(device) as mem:
            unet(xin, t_in, ctx)
    fwd = statistics.median(times)
    out["unet_forward_s"] = fwd
    out["unet_forward_min_s"] = min(times)
    out["unet_forward_peak_mb"] = mem.peak / 2 ** 20
    log(f"  {size}px: UNet forward {fwd * 1e3:.1f} ms")

    # 2. DDIM inversion, 35 of 50 steps (each one UNet forward)
    path = inversion_sigmas(sched, INVERTED, float(ms.sigma_min))
    with torch.inference_mode():
        t_inv, xt = timed(device, lambda: ddim_invert(denoise, x0, path[: sample_steps + 1]))
    out["inversion_s"] = t_inv * INVERTED / sample_steps
    if sample_steps != INVERTED:
        xt = x0 + sigma * noise  # timing-only run: stand-in latent at the editing step
    log(f"  inversion {out['inversion_s']:.2f} s")

    # 3. one recorded forward at the editing step, then DragNoise's bottleneck optimization
    replay = DecoderReplay(unet)
    with torch.inference_mode():
        unet((xt / (1 + sigma ** 2) ** 0.5).to(dtype), t_in, ctx,
             transformer_options=replay.recording_options({}, ctx, None))
    grid = (lat * 4, lat * 4)  # half the image, as the node and both official codes
    handles, targets = drag_points(grid[1], grid[0])
    cfg = DragConfig(iterations=iterations, lr=0.01, lam=0.1, stop_distance=-1.0)  # never stop early
    bh, bw = replay.bottleneck.shape[-2:]
    keep = torch.ones(1, 1, bh, bw, device=device)
    keep[..., bh // 4: 3 * bh // 4, bw // 4: 3 * bw // 4] = 0  # editable centre
    with torch.inference_mode(False), torch.enable_grad():
        with PeakMemory(device) as mem:
            replay.prepare()  # grad-safe copies of the replayed blocks' weights and recorded tensors
        out["dragnoise_weight_copy_mb"] = mem.peak / 2 ** 20
        clock = StepClock(device)
        with PeakMemory(device) as mem, replay:
            r = optimize_bottleneck(replay.decode, replay.bottleneck, handles, targets, cfg, keep, clock, grid=grid,
                                    low_memory=True)
        out["dragnoise_iter_s"] = clock.per_step()
        out["dragnoise_peak_mb"] = mem.peak / 2 ** 20
        out["dragnoise_final_handles"] = r.handles
        # the default, as the official code runs it: the feature upsampled to the grid every step
        clock = StepClock(device)
        with PeakMemory(device) as mem, replay:
            optimize_bottleneck(replay.decode, replay.bottleneck, handles, targets, cfg, keep, clock, grid=grid)
        out["dragnoise_upsample_iter_s"] = clock.per_step()
        out["dragnoise_upsample_peak_mb"] = mem.peak / 2 ** 20
    log(f"  DragNoise iteration {out['dragnoise_iter_s'] * 1e3:.1f} ms "
        f"(upsampling every step as the official code: {out['dragnoise_upsample_iter_s'] * 1e3:.1f} ms)")

    # 4. DragDiffusion: the latent z_t through the whole UNet
    abar, abar_prev = 1 / (1 + sigma ** 2), 1 / (1 + sched[start + 1] ** 2)
    with torch.inference_mode(False), torch.enable_grad():
        with PeakMemory(device) as mem:
            full = FullUNet(unet, ctx, t_in)  # grad-safe weight copies, swapped in per optimization
        out["dragdiffusion_weight_copy_mb"] = mem.peak / 2 ** 20
        editable = F.interpolate(1 - keep, size=(lat, lat), mode="nearest")
        clock = StepClock(device)
        with PeakMemory(device) as mem:
            rd = optimize_latent(full, (xt * abar ** 0.5).float(), handles, targets, grid, abar, abar_prev,
                                 cfg, editable, clock)
        del full
    out["dragdiffusion_iter_s"] = clock.per_step()
    out["dragdiffusion_peak_mb"] = mem.peak / 2 ** 20
    out["dragdiffusion_final_handles"] = rd.handles
    log(f"  DragDiffusion iteration {out['dragdiffusion_iter_s'] * 1e3:.1f} ms")

    # 5. propagation: 35 DDIM denoising steps with the optimized bottleneck injected (end_step 0)
    with torch.inference_mode():
        t_prop, _ = timed(device, lambda: propagate(denoise, xt, r.bottleneck, sched, start, sample_steps))
    out["propagation_s"] = t_prop * INVERTED / sample_steps
    log(f"  propagation {out['propagation_s']:.2f} s")

    out["dragnoise_iter_fwd"] = out["dragnoise_iter_s"] / fwd
    out["dragdiffusion_iter_fwd"] = out["dragdiffusion_iter_s"] / fwd
    out["speedup"] = out["dragdiffusion_iter_s"] / out["dragnoise_iter_s"]
    out["dragnoise_upsample_iter_fwd"] = out["dragnoise_upsample_iter_s"] / fwd
    out["speedup_method"] = out["dragdiffusion_iter_s"] / out["dragnoise_upsample_iter_s"]
    out["inversion_fwd"] = out["inversion_s"] / fwd
    out["propagation_fwd"] = out["propagation_s"] / fwd
    return out


def table(results: list[dict]) -> str:
    head = ("| size | UNet fwd | inversion (35 st.) | DragNoise iter | DragNoise iter, upsampling | "
            "DragDiffusion iter | DragDiff / DragNoise (upsampling) | propagation (35 st.) | opt. peak mem DN / DD |")
    rows = [head, "|" + "---|" * 9]
    for r in results:
        rows.append(
            f"| {r['size']} px | {r['unet_forward_s'] * 1e3:.1f} ms | {r['inversion_s']:.2f} s "
            f"({r['inversion_fwd']:.1f} fwd) | {r['dragnoise_iter_s'] * 1e3:.1f} ms ({r['dragnoise_iter_fwd']:.2f} fwd) | "
            f"{r['dragnoise_upsample_iter_s'] * 1e3:.1f} ms ({r['dragnoise_upsample_iter_fwd']:.2f} fwd) | "
            f"{r['dragdiffusion_iter_s'] * 1e3:.1f} ms ({r['dragdiffusion_iter_fwd']:.2f} fwd) | "
            f"**{r['speedup']:.2f}x** ({r['speedup_method']:.2f}x) | {r['propagation_s']:.2f} s ({r['propagation_fwd']:.1f} fwd) | "
            f"{r['dragnoise_peak_mb']:.0f} / {r['dragdiffusion_peak_mb']:.0f} MB |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny smoke run: shallow UNet, 64 px, 3 iterations, 1 sampling step")
    ap.add_argument("--sizes", help="image sizes in px, comma separated (default 256,512; quick 64)")
    ap.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda if available")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--layout", choices=["full", "shallow"], help="UNet layout (default full; quick shallow)")
    ap.add_argument("--iterations", type=int, help="optimization iterations timed per method (default 10; quick 3)")
    ap.add_argument("--sample-steps", type=int, default=INVERTED,
                    help=f"inversion/propagation steps actually run, scaled to {INVERTED} (each is one UNet "
                         f"forward); lower it on slow CPUs (default {INVERTED})")
    ap.add_argument("--repeats", type=int, help="timed UNet forwards (median; default 5, quick 2)")
    ap.add_argument("--model", choices=["sd15", "sdxl"], default="sd15",
                    help="sdxl: one whole DragNoise edit on ComfyUI's SDXL model class (bench/sdxl.py)")
    ap.add_argument("--sdxl-layout", choices=["full", "vega"], default="full",
                    help="full SDXL base architecture (2.6B) or the reduced Segmind-Vega-layout test model")
    ap.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], help="SDXL weights (default fp16 on CUDA, fp32 on CPU)")
    ap.add_argument("--stub-missing", action="store_true",
                    help="stand in for ComfyUI imports the benchmark never uses (transformers, scipy, ...) "
                         "when they are not installed")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in (a.sizes or ("64" if a.quick else "256,512")).split(",")]
    if any(s % 64 for s in sizes):
        ap.error("sizes must be multiples of 64 (SD1.5 latents are 1/8, halved three times)")
    layout = a.layout or ("shallow" if a.quick else "full")
    iterations = a.iterations or (3 if a.quick else 10)
    repeats = a.repeats or (1 if a.quick else 20 if (a.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cuda" else 5)
    sample_steps = min(a.sample_steps if not a.quick else min(a.sample_steps, 1), INVERTED)
    if iterations < 2 or sample_steps < 1:
        ap.error("need --iterations >= 2 and --sample-steps >= 1")
    device_name = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device_name == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch sees no CUDA device")
    env = import_comfy(device_name, stub_missing=a.stub_missing)
    device = torch.device("cuda", torch.cuda.current_device()) if device_name == "cuda" else torch.device("cpu")

    def log(msg):
        print(msg, file=sys.stderr, flush=True)
    if a.model == "sdxl":
        from bench import sdxl
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
            a.dtype or ("fp16" if device.type == "cuda" else "fp32")]
        report = sdxl.run(a.sdxl_layout, sizes, device, dtype, iterations, sample_steps, repeats, log)
        report["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        report["dtype"] = str(dtype).replace("torch.", "")
        print(f"DragNoise SDXL benchmark: {a.sdxl_layout} architecture ({report['unet_params'] / 1e9:.2f}B params), "
              f"{report['device']}, {report['dtype']}\n\n{report['table']}\n")
        if sample_steps != INVERTED:
            print(f"Inversion and propagation ran {sample_steps} steps, scaled to {INVERTED}.")
        if a.json:
            Path(a.json).write_text(json.dumps(report, indent=2))
        return report
    log(f"building {layout} SD1.5 UNet (seeded random weights) on {device} ...")
    t0 = time.perf_counter()
    patcher, bm = build_model(layout, device)
    log(f"  built in {time.perf_counter() - t0:.1f} s, dtype {bm.diffusion_model.dtype}")
    import comfy.ldm.modules.attention as attention
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else
        f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads, "
        f"{os.cpu_count()} cores visible",
        "dtype": str(bm.diffusion_model.dtype).replace("torch.", ""),
        "attention": attention.optimized_attention.__name__,
        "torch": torch.__version__, "python": platform.python_version(),
        "stubbed_imports": env["stubbed"],
    }
    if not a.quick:
        # one throwaway pass so lazy initialisation (CUDA kernels and workspaces, allocator
        # growth, first-call caches) lands in no measured number
        log("warm-up pass (not reported) ...")
        bench_size(bm, device, min(sizes), 2, 1, 1, lambda *_: None)
    results = []
    for size in sizes:
        results.append(bench_size(bm, device, size, iterations, sample_steps, repeats, log))
    params = sum(p.numel() for p in bm.diffusion_model.parameters())
    report = {"layout": layout, "unet_params": params, "machine": machine, "steps": STEPS, "inverted_steps": INVERTED,
              "memory": PeakMemory(device).how or ("VmHWM (reset per phase)" if os.access("/proc/self/clear_refs", os.W_OK)
                                                  else "ru_maxrss (process-wide)"),
              "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
              "results": results}
    print(f"DragNoise benchmark: {layout} SD1.5 UNet ({params / 1e6:.0f}M params), {machine['device']}, "
          f"{machine['dtype']}, attention {machine['attention']}")
    print()
    print(table(results))
    print()
    print("fwd = one full UNet forward (batch 1) measured in the same run. An iteration is forward + backward + "
          "handle tracking; DragDiff / DragNoise is DragDiffusion's iteration time over DragNoise's.")
    if sample_steps != INVERTED:
        print(f"Inversion and propagation ran {sample_steps} steps, scaled to {INVERTED}.")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
