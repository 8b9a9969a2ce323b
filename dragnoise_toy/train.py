"""Train the toy model (seeded; CPU, or one GPU with --device cuda). Writes dragnoise_toy/weights/*.

    python -m dragnoise_toy.train [--unet-steps 900] [--swap 0.6] [--init-from DIR] [--vae-from DIR]
                                  [--feature-skips on|off] [--device cuda --time-budget S] ...

(dragnoise_toy/README.md has the shipped model's seven stages; --help lists every option.)

1. TAESD: the encoder is fixed analytically (8x8 mean colour, see model.analytic_taesd); the decoder
   starts as its blurred inverse and is fine-tuned (L1) on 64 px crops of toy scenes;
   --decoder-init continues a trained one (the shipped decoder: 200 + 3,000 steps).
2. UNet (SD1.5 layout, reduced width): eps-prediction on the latents of toy scenes with the SD1.5
   schedule (scaled linear beta 0.00085..0.012, 1000 steps), constant conditioning, and
   bottleneck-swap steps (swap_loss); optionally without the decoder's skips up to DragNoise's
   feature layer (--feature-skips off, kept with the weights: model.NoFeatureSkips).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
M_DEFAULT = {"model_channels": 32, "channel_mult": [1, 2, 2, 4]}


def import_comfy(device: str = "cpu"):
    if device != "cpu":  # a bare GPU box: the shared importer stubs what training never runs
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from dragnoise_toy.comfy_env import import_comfy as bench_import
        bench_import(device, stub_missing=True)
        return
    import os
    comfy = Path(os.environ.get("COMFYUI_PATH") or ROOT / ".host" / "ComfyUI").resolve()
    if str(comfy) not in sys.path:
        sys.path.append(str(comfy))
    argv, sys.argv = sys.argv, [sys.argv[0], "--cpu"]
    import comfy.options
    comfy.options.enable_args_parsing()
    import comfy.cli_args  # noqa: F401
    sys.argv = argv


def scene_pool(n: int, seed: int, size: int = 128) -> torch.Tensor:
    from .data import random_scene
    rng = np.random.default_rng(seed)
    imgs = np.stack([random_scene(rng, size).render(ss=2) for _ in range(n)])
    return torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous()


def pair_pool(n: int, seed: int, size: int = 128, same: float = 0.2, two: float = 0.0,
              drag=(0.05, 0.3)) -> tuple:
    """n scene pairs (S, S'): S' is S with one shape translated (a drag with known result), two
    shapes for a share `two` of the moved pairs (as the benchmark's two-shape cases), or S itself
    for a share `same` of the pairs. Rendered images [n,3,H,W] each."""
    from .data import _drag_for, random_scene
    rng = np.random.default_rng(seed)
    a, b = [], []
    while len(a) < n:
        scene = random_scene(rng, size)
        moved = scene
        if rng.uniform() >= same:
            shapes = list(scene.shapes)
            count = 2 if two > 0 and len(shapes) > 1 and rng.uniform() < two else 1
            if count == 2:
                picks = [int(i) for i in rng.permutation(len(shapes))[:2]]
            else:
                picks = [int(rng.integers(len(shapes)))]
            ok = True
            for i in picks:
                others = [o for j, o in enumerate(shapes) if j != i]
                d = _drag_for(rng, scene, i, others, (size * drag[0], size * drag[1]))
                if d is None:
                    ok = False
                    break
                shapes[i] = shapes[i].moved(*d)
            if not ok:
                continue
            moved = type(scene)(scene.size, scene.background, tuple(shapes))
        a.append(scene.render(ss=2))
        b.append(moved.render(ss=2))
    to_t = lambda v: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return to_t(a), to_t(b)


CHUNK = 250  # scenes per independently seeded chunk: pools do not depend on the worker count


def _latent_chunk(job):
    from .model import mean_colour_latent
    kind, seed, n, two, drag, size = job
    torch.set_num_threads(1)
    if kind == "scenes":
        return mean_colour_latent(scene_pool(n, seed, size))
    return tuple(mean_colour_latent(v) for v in pair_pool(n, seed, size, two=two, drag=drag))


def latent_pools(scenes: int, pairs: int, seed: int, workers: int, two: float = 0.0, drag=(0.05, 0.3),
                 size: int = 128):
    """Latents of `scenes` scenes and of `pairs` scene pairs, rendered in chunks of CHUNK with their own seeds, on `workers` processes (rendering
    is the slow part: ~4 ms a scene)."""
    import multiprocessing as mp
    jobs = [("scenes", seed * 100003 + i, min(CHUNK, scenes - i * CHUNK), two, drag, size)
            for i in range(-(-scenes // CHUNK))]
    jobs += [("pairs", seed * 100003 + 50000 + i, min(CHUNK, pairs - i * CHUNK), two, drag, size)
             for i in range(-(-pairs // CHUNK))]
    with mp.get_context("spawn").Pool(workers) as pool:
        out = pool.map(_latent_chunk, jobs)
    lat = torch.cat([o for j, o in zip(jobs, out) if j[0] == "scenes"])
    pp = [o for j, o in zip(jobs, out) if j[0] == "pairs"]
    return lat, (tuple(torch.cat(v) for v in zip(*pp)) if pp else None)


def cached_latent_pools(cache, scenes: int, pairs: int, seed: int, workers: int, two: float = 0.0,
                        drag=(0.05, 0.3), size: int = 128):
    """latent_pools, loaded from the file `cache` when it holds these pools, else rendered and saved
    there (None: not cached), so several runs share one rendering."""
    key = ([scenes, pairs, seed, two, list(drag)] + ([size] if size != 128 else []))
    if cache and Path(cache).is_file():
        cached = torch.load(cache)
        assert cached["key"] == key, f"{cache} holds pools for {cached['key']}, not {key}"
        return cached["latents"], cached["pairs"]
    latents, pair_latents = latent_pools(scenes, pairs, seed, workers, two, drag, size)
    if cache:
        torch.save({"key": key, "latents": latents, "pairs": pair_latents}, cache)
    return latents, pair_latents


def sd15_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def train_decoder(taesd, pool, steps, batch, seed, log, crop=64, lr=5e-4, decay=False):
    """L1 on random crops (multiples of 8 px) of the pool's scenes. decay: cosine to 10% of lr."""
    from .model import mean_colour_latent
    g = torch.Generator().manual_seed(seed)
    dec = taesd.taesd_decoder
    opt = torch.optim.Adam(dec.parameters(), lr=lr)
    loss_v = None
    cells = (pool.shape[-1] - crop) // 8 + 1
    for step in range(steps):
        if decay:
            for pg in opt.param_groups:
                pg["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        idx = torch.randint(len(pool), (batch,), generator=g)
        ox, oy = (int(v) * 8 for v in torch.randint(0, cells, (2,), generator=g))
        x = pool[idx][..., oy:oy + crop, ox:ox + crop]
        z = mean_colour_latent(x)
        loss = (dec(z) - x).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_v = loss.item() if loss_v is None else 0.9 * loss_v + 0.1 * loss.item()
        if step % 25 == 0 or step == steps - 1:
            log(f"decoder step {step} L1 {loss.item():.4f} (ema {loss_v:.4f})")
    return loss_v


def noisy(h: torch.Tensor, sigma: float, g) -> torch.Tensor:
    """h plus Gaussian noise of `sigma` times each sample's own standard deviation."""
    if sigma <= 0:
        return h
    std = h.flatten(1).std(1)[:, None, None, None]
    return h + sigma * std * torch.randn(h.shape, generator=g, device=h.device)


def train_unet(unet, latents, steps, batch, lr, seed, log, t_max=1000, skip_drop=0.5, pairs=None, swap=0.0,
               t_edit=(560, 800), rho=(0.5, 1.0), bn_noise=0.0, device="cpu", time_budget=None,
               feature_skips=True, t_low=200, swap_focus=0.0):
    """eps-prediction training. skip_drop: share of samples whose skip connections into the decoder
    blocks up to DragNoise's feature layer are zeroed (architecture unchanged), so those blocks learn
    to draw the layout from the bottleneck; without it the trained decoder ignored the bottleneck
    (zeroing it changed the feature by 0.1%) and no bottleneck edit could move anything.
    bn_noise: Gaussian noise (share of the bottleneck's std) added to the bottleneck the decoder
    sees, so the decoder ignores directions off the scenes' manifold and DragNoise's gradient
    has to follow it (what a denoising autoencoder does to its decoder's Jacobian).
    time_budget: seconds; the step count is then fixed from the speed of steps 50-100 (logged).
    feature_skips=False: the decoder blocks up to the feature layer never get their encoder skips
    (model.NoFeatureSkips, also at inference), so the bottleneck alone draws that feature."""
    from dragnoise import feature_block_index
    from .model import constant_context
    last = feature_block_index(unet)
    g = torch.Generator(device).manual_seed(seed)
    ac = sd15_alphas_cumprod().to(device)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=0.0)
    ctx = constant_context(batch).to(device)
    warm = 20
    ema = {}  # per kind of step: the running mean of what its log line shows

    def track(kind, value):
        ema[kind] = value if kind not in ema else 0.98 * ema[kind] + 0.02 * value

    t_start = time.perf_counter()

    def plain_loss():
        idx = torch.randint(len(latents), (batch,), generator=g, device=device)
        x0 = latents[idx]
        flip = torch.rand(batch, generator=g, device=device) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, t_max, (batch,), generator=g, device=device)
        noise = torch.randn(x0.shape, generator=g, device=device)
        a = ac[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        keep = (torch.rand(batch, generator=g, device=device) >= skip_drop).float()[:, None, None, None]
        if not feature_skips:
            keep = keep * 0

        def drop_skips(h, hsp, options):
            if options["block"][1] == 0:
                h = noisy(h, bn_noise, g)
            return h, (hsp * keep if options["block"][1] <= last else hsp)
        options = {"patches": {"output_block_patch": [drop_skips]}}
        return torch.nn.functional.mse_loss(unet(xt, t.float(), ctx, transformer_options=options), noise)

    step = 0
    while step < steps:
        for pg in opt.param_groups:  # warm-up, then cosine decay to 10%
            pg["lr"] = lr * min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        swapping = pairs is not None and bool(torch.rand((), generator=g, device=device) < swap)
        if swapping:
            loss = swap_loss(unet, pairs, batch, ac, ctx, g, t_edit, rho, t_low=t_low, bn_noise=bn_noise,
                             skips_from=-1 if feature_skips else last, focus=swap_focus)
        else:
            loss = plain_loss()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        kind = "swap loss" if swapping else "loss"
        track(kind, loss.item())
        if step % 50 == 0 or step == steps - 1:
            log(f"unet step {step} {kind} {loss.item():.4f} (ema {ema[kind]:.4f})")
        step += 1
        if time_budget and step == 50:  # timed after 50 warm-up steps (cuDNN autotuning, caches)
            t50 = time.perf_counter()
        if time_budget and step == 100:
            per = (time.perf_counter() - t50) / 50
            steps = min(steps, 100 + int((time_budget - (time.perf_counter() - t_start)) / per))
            log(f"{per * 1000:.0f} ms a step: {steps} steps in the {time_budget} s budget")
    return ema.get("loss"), ema.get("swap loss"), steps


def swap_loss(unet, pairs, batch, ac, ctx, g, t_edit, rho, t_low=200, at_edit=0.35, bn_noise=0.0, skips_from=-1,
              focus=0.0):
    """Bottleneck swap: the decoder's layout must follow the bottleneck, its noise the skips.

    A pair (S, S') of one scene and the same scene with one shape moved. The bottleneck comes from
    S' at an editing step t_e (noise partly correlated with S's), as an optimized bottleneck would
    be; the skips come from x_t = a_t (S' + k (S - S')) + s_t eps at t_low <= t <= t_e, a point of
    the denoising trajectory that starts at S's x_{t_e}: k = 1 at t_e (the skips show only S) and
    k in [g, 1] below it, where g = SNR ratio (s_t / a_t) / (s_e / a_e) is what an exact
    propagation leaves of S and 1 is no progress at all. The target is the eps that makes x0 = S'.
    So the skips alone never say where the shape goes: only the bottleneck does. Without the k = 1
    samples (an exact trajectory only) the skips already showed S' below t_e and the model learned
    to ignore the bottleneck (measured: the oracle moved shapes 1% of the way).
    focus: extra weight of the latent cells where S and S' differ (and their neighbours): a moved
    shape covers ~2% of the cells, so in a plain mean its colour at the new place hardly counts."""
    src, dst = pairs
    dev = src.device
    idx = torch.randint(len(src), (batch,), generator=g, device=dev)
    s0, s1 = src[idx], dst[idx]
    flip = torch.rand(batch, generator=g, device=dev) < 0.5
    s0 = torch.where(flip[:, None, None, None], s0.flip(-1), s0)
    s1 = torch.where(flip[:, None, None, None], s1.flip(-1), s1)
    te = torch.randint(t_edit[0], t_edit[1], (batch,), generator=g, device=dev)
    t, ae, at, se, st, k = trajectory_point(te, t_low, at_edit, ac, g)
    eps = torch.randn(s0.shape, generator=g, device=dev)
    r = (rho[0] + (rho[1] - rho[0]) * torch.rand(batch, generator=g, device=dev))[:, None, None, None]
    eps_e = r * eps + (1 - r * r).sqrt() * torch.randn(s0.shape, generator=g, device=dev)
    x_e = ae.sqrt() * s1 + se * eps_e
    x_t = at.sqrt() * (s1 + k * (s0 - s1)) + st * eps
    target = eps + at.sqrt() / st * k * (s0 - s1)
    held = {}

    def skips(i, hsp):  # blocks up to skips_from get no encoder skips (train_unet's feature_skips)
        return hsp * 0 if i <= skips_from else hsp

    def grab(h, hsp, options):
        if options["block"][1] == 0:
            held["b"] = h
        return h, skips(options["block"][1], hsp)

    def inject(h, hsp, options):
        i = options["block"][1]
        return (noisy(held["b"], bn_noise, g) if i == 0 else h), skips(i, hsp)
    unet(x_e, te.float(), ctx, transformer_options={"patches": {"output_block_patch": [grab]}})
    pred = unet(x_t, t.float(), ctx, transformer_options={"patches": {"output_block_patch": [inject]}})
    return focused_mse(pred, target, s0, s1, focus)


def trajectory_point(te, t_low, at_edit, ac, g):
    """swap_loss's skip step t in [t_low, te] (te itself for a share at_edit) and mix k in [g, 1],
    per sample of te [B]; returns t and the [B,1,1,1] a_e, a_t, s_e, s_t, k."""
    batch, dev = len(te), te.device
    t = t_low + (torch.rand(batch, generator=g, device=dev) * (te - t_low + 1)).long().clamp(max=te - t_low)
    t = torch.where(torch.rand(batch, generator=g, device=dev) < at_edit, te, t)
    ae, at = ac[te][:, None, None, None], ac[t][:, None, None, None]
    se, st = (1 - ae).sqrt(), (1 - at).sqrt()
    ratio = ((st / at.sqrt()) / (se / ae.sqrt())).clamp(max=1.0)
    return t, ae, at, se, st, ratio ** torch.rand(batch, 1, 1, 1, generator=g, device=dev)


def focused_mse(pred, target, s0, s1, focus):
    """MSE with the latent cells where s0 and s1 differ (and their neighbours) weighed 1 + focus."""
    if focus <= 0:
        return torch.nn.functional.mse_loss(pred, target)
    moved = ((s0 - s1).abs().amax(1, keepdim=True) > 0.05).float()
    weight = 1 + focus * torch.nn.functional.max_pool2d(moved, 3, 1, 1)
    return (weight * (pred - target) ** 2).mean() / weight.mean()


def toy_unet_config(model_channels: int, channel_mult: list[int]) -> dict:
    """The SD1.5 block layout (one res block per level) with the given width and levels. Four levels
    are the SD1.5 layout exactly (transformers on the first three); fewer levels put transformers on
    all but the full-resolution level (attention at 16x16 costs most and adds least here)."""
    from .model import UNET_CONFIG
    n = len(channel_mult)
    depth = [1, 1, 1, 0] if n == 4 else [0] + [1] * (n - 1)
    return {**UNET_CONFIG, "model_channels": model_channels, "channel_mult": list(channel_mult),
            "num_res_blocks": [1] * n, "transformer_depth": depth,
            "transformer_depth_output": [d for d in depth for _ in range(2)]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decoder-steps", type=int, default=200)
    ap.add_argument("--decoder-batch", type=int, default=8)
    ap.add_argument("--decoder-crop", type=int, default=64, help="decoder training crop, pixels (multiple of 8)")
    ap.add_argument("--decoder-lr", type=float, default=5e-4)
    ap.add_argument("--decoder-scenes", type=int, default=500, help="scenes the decoder trains on (--workers > 0)")
    ap.add_argument("--decoder-init", help="continue training the TAESD decoder in this folder (lr decays, cosine, "
                                           "to 10%%; the encoder is copied) instead of the analytic start")
    ap.add_argument("--unet-steps", type=int, default=900)
    ap.add_argument("--unet-batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--skip-drop", type=float, default=0.5,
                    help="share of samples trained with the skips into the decoder up to the feature layer zeroed")
    ap.add_argument("--scenes", type=int, default=3000)
    ap.add_argument("--model-channels", type=int, default=M_DEFAULT["model_channels"])
    ap.add_argument("--channel-mult", default=",".join(map(str, M_DEFAULT["channel_mult"])),
                    help="UNet levels (the bottleneck is 16 / 2^(levels-1) latent cells wide at 128 px)")
    ap.add_argument("--swap", type=float, default=0.0, help="share of steps trained on bottleneck swaps")
    ap.add_argument("--pairs", type=int, default=3000, help="scene pairs for swap training")
    ap.add_argument("--bn-noise", type=float, default=0.0,
                    help="noise added to the bottleneck the decoder sees in training (share of its std)")
    ap.add_argument("--t-edit", default="560,800", help="editing steps the swap bottleneck comes from")
    ap.add_argument("--t-low", type=int, default=200, help="lowest step the swap skips come from")
    ap.add_argument("--swap-focus", type=float, default=0.0,
                    help="extra swap-loss weight on the latent cells where the pair differs (the moved shapes)")
    ap.add_argument("--two", type=float, default=0.0, help="share of moved swap pairs with two shapes moved")
    ap.add_argument("--drag-range", default="0.05,0.3", help="drag lengths of the swap pairs, shares of the size")
    ap.add_argument("--workers", type=int, default=0,
                    help="render the scenes in seeded chunks on this many processes (0: one stream, as before)")
    ap.add_argument("--pool-cache", help="load the chunked pools from this file, or save them there (several runs)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--feature-skips", choices=("on", "off"),
                    help="off: the decoder up to the feature layer gets no encoder skips "
                         "(default: on, or as --init-from)")
    ap.add_argument("--time-budget", type=float, help="seconds of UNet training; sets the step count from the speed")
    ap.add_argument("--size", type=int, default=128, help="scene size, pixels (a multiple of 8 per UNet level)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: on a shared 2-core machine 2 threads ran 2-5x slower than 1)")
    ap.add_argument("--init-from", help="start the UNet from the weights (and configuration) in this folder")
    ap.add_argument("--vae-from", help="reuse the TAESD files in this folder instead of training the decoder")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "weights"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    if a.device != "cpu":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    import_comfy(a.device)
    import safetensors.torch
    from . import model as M

    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", flush=True)
    drag = tuple(float(v) for v in a.drag_range.split(","))
    n_pairs = a.pairs if a.swap > 0 else 0
    if a.workers > 0:  # seeded chunks on several processes
        latents, pairs = cached_latent_pools(a.pool_cache, a.scenes, n_pairs, a.seed, a.workers, a.two, drag,
                                              a.size)
        pool = scene_pool(min(a.scenes, a.decoder_scenes), a.seed, a.size)  # for the decoder, if it is trained
    else:  # one stream, as before
        pool = scene_pool(a.scenes, a.seed, a.size)
        with torch.no_grad():
            latents = M.mean_colour_latent(pool)
            pairs = tuple(M.mean_colour_latent(v) for v in pair_pool(
                n_pairs, a.seed + 4, a.size, two=a.two, drag=drag)) if n_pairs else None
    log(f"{a.scenes} scenes rendered")
    taesd = M.analytic_taesd(a.seed)
    taesd.taesd_encoder.requires_grad_(False)
    vae = a.vae_from or a.decoder_init  # the VAE is independent of the UNet: reuse a trained one
    if vae:
        sd = M.taesd_state_dict(Path(vae) / M.ENCODER_FILE, Path(vae) / M.DECODER_FILE)
        taesd.load_state_dict({k: v.float() for k, v in sd.items() if k.startswith("taesd_")}, strict=False)
        log(f"VAE from {vae}" + ("" if a.vae_from else ", its decoder trained on"))
    dec_loss = None if a.vae_from else train_decoder(
        taesd, pool, a.decoder_steps, a.decoder_batch, a.seed + 1, log, crop=a.decoder_crop, lr=a.decoder_lr,
        decay=bool(a.decoder_init))
    t_dec = time.perf_counter() - t0
    log(f"latents {tuple(latents.shape)} mean {latents.mean():.3f} std {latents.std():.3f}")
    config = toy_unet_config(a.model_channels, [int(v) for v in a.channel_mult.split(",")])
    if pairs is not None:
        log(f"{len(pairs[0])} scene pairs for swap training")
    unet = M.init_unet_(M.build_unet(config), a.seed + 2)
    settings = {}
    if a.init_from:  # continue a run: same configuration, its weights as the start
        import comfy.utils
        config = M.unet_config(a.init_from)
        settings = M.toy_settings(a.init_from)
        unet = M.build_unet(config)
        sd = comfy.utils.load_torch_file(str(Path(a.init_from) / M.UNET_FILE), safe_load=True)
        unet.load_state_dict({k: v.float() for k, v in sd.items()})
        log(f"UNet from {a.init_from}")
    if a.feature_skips:
        settings["feature_skips"] = a.feature_skips == "on"
    if a.size != 128 or "size" in settings:  # the scene size the toy is made for (its demo and benchmark)
        settings["size"] = a.size
    unet.to(a.device)
    latents = latents.to(a.device)
    pairs = None if pairs is None else tuple(v.to(a.device) for v in pairs)
    unet_loss, swap_loss_v, steps_done = train_unet(
        unet, latents, a.unet_steps, a.unet_batch, a.lr, a.seed + 3, log, skip_drop=a.skip_drop, pairs=pairs,
        swap=a.swap, bn_noise=a.bn_noise, device=a.device, time_budget=a.time_budget,
        feature_skips=settings.get("feature_skips", True), t_low=a.t_low,
        t_edit=tuple(int(v) for v in a.t_edit.split(",")), swap_focus=a.swap_focus)
    unet.cpu()
    total = time.perf_counter() - t0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    half = lambda sd: {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}  # noqa: E731
    safetensors.torch.save_file(half(taesd.taesd_encoder.state_dict()), str(out / M.ENCODER_FILE))
    safetensors.torch.save_file(half(taesd.taesd_decoder.state_dict()), str(out / M.DECODER_FILE))
    safetensors.torch.save_file(half(unet.state_dict()), str(out / M.UNET_FILE))
    saved = {**config, **({M.TOY_KEY: settings} if settings else {})}  # toy settings beside the UNet's
    (out / M.CONFIG_FILE).write_text(json.dumps(saved, indent=1) + "\n")
    info = {"command": "python -m dragnoise_toy.train " + " ".join(argv if argv is not None else sys.argv[1:]),
            "args": vars(a), "unet_steps_done": steps_done,
            "device": torch.cuda.get_device_name() if a.device != "cpu" else "cpu",
            "decoder_l1_ema": dec_loss, "unet_mse_ema": unet_loss, "swap_mse_ema": swap_loss_v,
            "decoder_seconds": round(t_dec, 1), "total_seconds": round(total, 1),
            "unet_params": sum(p.numel() for p in unet.parameters()), "torch": torch.__version__,
            "bytes": {p.name: p.stat().st_size for p in sorted(out.glob("*.safetensors"))}}
    (out / "train_log.json").write_text(json.dumps(info, indent=1) + "\n")
    log(json.dumps(info))


if __name__ == "__main__":
    main()
