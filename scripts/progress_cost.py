"""What the live progress costs, in UNet forwards: handle trails and the x0 preview.

    .host/venv/bin/python scripts/progress_cost.py [--model toy|sd15] [--size 256] [--device cpu|cuda]

Records one UNet forward at the editing step (as the optimize node does), then times, each as the
median of several runs: a full UNet forward (the unit), one optimization iteration, one trail
message (tracked handles read back + the JSON the server sends) and one x0 preview (the rest of the
UNet from the decoder feature, the x0 estimate, the previewer the node uses (ComfyUI's Latent2RGB;
the toy model's own VAE for the toy), the JPEG the server sends). Prints each in forwards and the share of the loop at several trail_every / preview_every
values, before the optimize node's cap (it skips a preview while previews took over 5% of the loop).
sd15 is the full SD1.5 UNet layout with seeded random weights (timing only).
"""
import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["toy", "sd15"], default="toy")
    ap.add_argument("--size", type=int, default=None, help="image px (toy: 128, sd15: 256)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from dragnoise_toy.comfy_env import import_comfy
    import_comfy(args.device)
    import torch
    import comfy.samplers
    import latent_preview
    from dragnoise import DecoderReplay, DragConfig, optimize_bottleneck

    device = torch.device(args.device)
    if args.model == "toy":
        from dragnoise_toy import model as toy
        patcher, size = toy.load_unet_patcher(), args.size or toy.SIZE
        ctx = toy.positive_conditioning()[0][0]
    else:
        import tiny_sd15
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        patcher, size = tiny_sd15.load_model(tiny_sd15.unet_state_dict(tiny_sd15.FULL, dtype=dtype)), args.size or 256
        ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(1))
    bm = patcher.model.to(device)
    unet, ms, fmt = bm.diffusion_model, bm.model_sampling, bm.latent_format
    dtype = unet.dtype
    g = torch.Generator().manual_seed(0)
    lat = size // 8
    ctx = ctx.to(device, dtype)
    sigma = [float(s) for s in comfy.samplers.calculate_sigmas(ms, "ddim_uniform", 50)][15]
    x = (torch.randn(1, 4, lat, lat, generator=g) * (1 + sigma ** 2) ** 0.5).to(device)
    xin = (x / (1 + sigma ** 2) ** 0.5).to(dtype)
    t = ms.timestep(torch.tensor([sigma])).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def median_time(fn, n=args.repeats):
        fn()  # warm-up
        times = []
        for _ in range(n):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with torch.inference_mode():
        fwd = median_time(lambda: unet(xin, t, ctx))
        replay = DecoderReplay(unet)
        replay.out_dtype = xin.dtype
        unet(xin, t, ctx, transformer_options=replay.recording_options({}, ctx, None))
    previewer = latent_preview.Latent2RGBPreviewer(fmt.latent_rgb_factors, fmt.latent_rgb_factors_bias)
    if args.model == "toy":  # as nodes/bridge.py's VAEPreviewer: the toy model previews with its own VAE
        from PIL import Image
        vae = toy.load_vae()

        class ToyPreviewer(latent_preview.LatentPreviewer):
            def decode_latent_to_preview(self, x0):
                img = vae.decode(fmt.process_out(x0[:1]))[0]
                return Image.fromarray((img.clamp(0, 1) * 255).byte().cpu().numpy())
        previewer = ToyPreviewer()
    gw = size // 2
    handles, targets = [(gw * 0.35, gw * 0.5), (gw * 0.6, gw * 0.35)], [(gw * 0.5, gw * 0.5), (gw * 0.6, gw * 0.5)]
    handles = [tuple(map(round, h)) for h in handles]
    targets = [tuple(map(round, p)) for p in targets]

    stamps, seen = [], {}

    def clock(step, total, info):
        sync()
        stamps.append(time.perf_counter())
        seen.update(info)

    iters = max(4, args.repeats + 1)
    with torch.inference_mode(False), torch.enable_grad(), replay:
        config = DragConfig(iterations=iters, stop_distance=0.0)
        optimize_bottleneck(replay.decode, replay.bottleneck, handles, targets, config, callback=clock, grid=(gw, gw))
        iteration = statistics.median(b - a for a, b in zip(stamps, stamps[1:]))
        h, loss, feat = seen["handles"], seen["loss"], seen["feature"].detach()

        def trail():  # what LiveProgress.send does beyond the loop: read back, build the message
            json.dumps({"handles": [[float(a) * 2, float(b) * 2] for a, b in h.tolist()], "loss": float(loss)})

        def preview():  # what the preview callback does, plus the server's JPEG encoding
            x0 = ms.calculate_denoised(torch.tensor([sigma], device=device), replay.finish(feat).float(), x)
            _, img, max_size = previewer.decode_latent_to_preview_image("JPEG", x0)
            img.thumbnail((max_size, max_size))
            img.save(io.BytesIO(), format="JPEG", quality=95)

        t_trail, t_preview = median_time(trail, 20), median_time(preview)

    print(f"model {args.model}, {size} px, {args.device}: UNet forward {fwd * 1e3:.2f} ms, "
          f"one optimization iteration {iteration * 1e3:.2f} ms = {iteration / fwd:.2f} forwards")
    print(f"trail message: {t_trail * 1e3:.3f} ms = {t_trail / fwd:.4f} forwards each")
    print(f"x0 preview:    {t_preview * 1e3:.2f} ms = {t_preview / fwd:.3f} forwards each")
    for every in (1, 2, 5, 10, 20):
        per = (t_trail + t_preview) / every
        print(f"every {every:>2} iterations: {per / fwd:.4f} forwards per iteration "
              f"(trails {t_trail / every / fwd:.4f}, preview {t_preview / every / fwd:.4f}), "
              f"{100 * per / iteration:.1f}% of the loop (the node skips previews beyond 5%)")


if __name__ == "__main__":
    main()
