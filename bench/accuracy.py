"""Drag accuracy of DragNoise vs the DragDiffusion-style baseline on the toy model (dragnoise_toy).

    python bench/accuracy.py [--cases 60] [--seed 0] [--steps 50 --inversion-steps 35] [--iterations 60]
                             [--json out.json] [--save-images dir]

A fixed seeded set of drag cases (dragnoise_toy.data.drag_cases: flat shapes, single pairs, two
shapes dragged at once, two pairs on one shape, every third case with an editable mask) runs
through both methods on the same trained toy model, in-process and on the engine's functions
(the nodes' path without the server): TAESD encode -> DDIM inversion to the editing step ->
optimization -> denoising -> TAESD decode. Shapes are found in the output by colour.

Per method: drag error = distance between the dragged shape's centroid shift and the drag vector
(before the edit it is the drag length), success = error <= drag length / 4, PSNR outside the
moved shapes (old and new place) against the input, optimization iterations used, seconds.
"Reconstruction" is the same inversion + denoising with no optimization (the model's own fidelity).
"Oracle" injects the expected (already dragged) image's own bottleneck at the editing step instead
of an optimized one: what any bottleneck optimization could reach on this model at best.

Diagnostics per case (and their means), so a failure says where it fails:
- oracle_feature_ratio / _cos: the oracle bottleneck's change of the drag feature (with the input's
  skips) projected on the expected image's feature change (1 = all the way), and their cosine;
- oracle_x0_ratio / _cos: the same for the x0 prediction at the editing step against the true
  latent change;
- dn_oracle_cos: cosine between DragNoise's optimized bottleneck change and the oracle's;
- oracle_b_change / dn_b_change: mean absolute bottleneck change of the oracle and of DragNoise
  (Adam moves an element by about lr per iteration: what lr the model needs);
- handle_travel: how far the tracked handles went, as a share of the drag (grid cells);
- shift_along: the centroid shift along the drag direction, as a share of the drag (mean, median).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from dragnoise_toy.comfy_env import import_comfy  # noqa: E402
from bench.metrics import psnr, score_drag  # noqa: E402

METHODS = ("reconstruction", "dragnoise", "dragdiffusion", "oracle")
# more on request (--methods): DragNoise ignoring the case's mask, DragNoise keeping the image outside the
# mask during propagation (it reuses "dragnoise"'s optimization when both run), and DragNoise with no mask
# painted but Optimize's band around the drag paths (mask loss and keeping)
EXTRA_METHODS = ("dragnoise_nomask", "dragnoise_keep", "dragnoise_band")


class Toy:
    """The toy model loaded the way the loader node loads it, and the pipeline pieces around it."""

    def __init__(self, steps: int, inversion_steps: int, device: str = "cpu", end_step: int = 0):
        import comfy.samplers
        from dragnoise_toy import model as M
        from comfy.taesd.taesd import TAESD
        self.device = torch.device(device)
        self.patcher = M.load_unet_patcher()
        with torch.inference_mode():  # the weights stay inference tensors, as ComfyUI loads them
            self.bm = self.patcher.model.to(self.device)
        self.unet = self.bm.diffusion_model
        self.ms = self.bm.model_sampling
        sd = M.taesd_state_dict()
        self.taesd = TAESD()
        self.taesd.load_state_dict({k: v.float() for k, v in sd.items()})
        self.taesd.eval().to(self.device)
        self.ctx = M.constant_context().to(self.device)
        # the model's own patches (the toy's NoFeatureSkips), which ComfyUI's sampler would apply
        self.model_patches = list(self.patcher.model_options.get("transformer_options", {})
                                  .get("patches", {}).get("output_block_patch", []))
        self.steps, self.inverted, self.end_step = steps, inversion_steps, end_step
        self.sched = [float(s) for s in comfy.samplers.calculate_sigmas(self.ms, "ddim_uniform", steps)]
        self.start = steps - inversion_steps
        self.sigma = self.sched[self.start]

    @torch.no_grad()
    def encode(self, img: np.ndarray) -> torch.Tensor:  # [H,W,3] in [0,1] -> UNet-space latent
        return self.taesd.taesd_encoder(torch.from_numpy(img).permute(2, 0, 1)[None].float().to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        return self.taesd.taesd_decoder(z.float()).clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy()

    def options(self, to=None) -> dict:
        """transformer_options `to` with the model's own output-block patches first."""
        to = dict(to or {})
        patches = {k: list(v) for k, v in to.get("patches", {}).items()}
        patches["output_block_patch"] = self.model_patches + patches.get("output_block_patch", [])
        return {**to, "patches": patches}

    def denoise(self, x, s, to=None):
        return self.bm.apply_model(x, torch.full((1,), s, device=self.device), c_crossattn=self.ctx,
                                   transformer_options=self.options(to))

    def unet_input(self, x, s):
        return x / (1 + s ** 2) ** 0.5, self.ms.timestep(torch.tensor([s], device=self.device))

    def invert(self, z, trajectory=None):
        from dragnoise import ddim_invert, inversion_sigmas
        path = inversion_sigmas(self.sched, self.inverted, float(self.ms.sigma_min))
        with torch.inference_mode():
            return ddim_invert(self.denoise, z, path, trajectory=trajectory)

    def record(self, xt):
        """One UNet forward at the editing step, recorded for replay (bottleneck, drag feature)."""
        from dragnoise import DecoderReplay
        replay = DecoderReplay(self.unet)
        x_in, t_in = self.unet_input(xt, self.sigma)
        with torch.inference_mode():
            options = replay.recording_options(self.options(), self.ctx, None)
            self.unet(x_in, t_in, self.ctx, transformer_options=options)
        return replay

    def injected(self, bottleneck):
        """transformer_options that propagate `bottleneck` from the editing step down to t' (the last
        end_step steps run the UNet unchanged, as the propagation node's end_step)."""
        from dragnoise import PropagationWindow
        window = PropagationWindow(bottleneck, self.sched[self.start], self.sched[self.steps - 1 - self.end_step])
        return window.transformer_options()

    def x0_at_edit(self, xt, bottleneck):
        """The x0 prediction at the editing step with `bottleneck` injected."""
        with torch.inference_mode():
            sigmas = torch.tensor([self.sigma], device=self.device)
            return self.denoise(xt, self.sigma, {**self.injected(bottleneck), "sigmas": sigmas})

    def sample(self, xt, to=None):
        """DDIM (ComfyUI's ddim = Euler in sigma space) from the editing step to the end."""
        x = xt
        with torch.inference_mode():
            for i in range(self.start, self.steps):
                s, s1 = self.sched[i], self.sched[i + 1]
                d = self.denoise(x, s, {**to, "sigmas": torch.tensor([s], device=self.device)} if to else None)
                x = d + (x - d) / s * s1 if s1 > 0 else d
        return x


def core_nodes():
    """ComfyUI's own mask and image nodes, imported as its server imports them (its nodes.py first: the
    pack's nodes/ package must not shadow it)."""
    from dragnoise_toy.comfy_env import comfy_path
    sys.path.insert(0, str(comfy_path()))
    try:
        import nodes  # noqa: F401  ComfyUI's nodes.py, which comfy_extras imports
    finally:
        sys.path.pop(0)
    from comfy_extras.nodes_mask import GrowMask, ImageCompositeMasked, ImageToMask, MaskToImage
    from comfy_extras.nodes_post_processing import Blur
    return GrowMask, MaskToImage, Blur, ImageToMask, ImageCompositeMasked


def run_node(cls, **inputs):
    """A core node's first output, whether it is a V1 (FUNCTION) or a V3 (execute) node."""
    if hasattr(cls, "FUNCTION"):
        return getattr(cls(), cls.FUNCTION)(**inputs)[0]
    return cls.execute(**inputs).result[0]


def keep_in_pixels(image: np.ndarray, decoded: np.ndarray, region: np.ndarray) -> np.ndarray:
    """What the shipped masked workflows save: scripts/make_workflows.py's keep_composite run through the
    same core nodes with the same feather (the input's pixels outside `region`, the drag inside it)."""
    from scripts.make_workflows import KEEP_BLUR, KEEP_GROW, KEEP_SIGMA
    grow, to_image, blur, to_mask, composite = core_nodes()
    m = run_node(grow, mask=torch.from_numpy((region > 0.5).astype(np.float32))[None], expand=KEEP_GROW,
                 tapered_corners=False)
    m = run_node(to_mask, image=run_node(blur, image=run_node(to_image, mask=m), blur_radius=KEEP_BLUR,
                                         sigma=KEEP_SIGMA), channel="red")
    out = run_node(composite, destination=torch.from_numpy(image)[None].float(), source=torch.from_numpy(decoded)[None],
                   x=0, y=0, resize_source=False, mask=m)
    return out[0].numpy()


def editable_grid(mask: np.ndarray | None, hw, device="cpu") -> torch.Tensor | None:
    """1 where the (pixel) editable mask touches a cell of grid hw (as the optimize node does)."""
    if mask is None:
        return None
    return F.adaptive_max_pool2d(torch.from_numpy(mask)[None, None], hw).to(device)


def optimize_dragnoise(toy: Toy, xt, handles, targets, config, mask, grid, low_memory=False):
    """DragNoise's optimization at the editing step, as the node runs it: (result, starting bottleneck)."""
    from dragnoise import optimize_bottleneck
    replay = toy.record(xt)
    with torch.inference_mode(False), torch.enable_grad(), replay:
        b = replay.bottleneck
        keep = None if mask is None else 1 - editable_grid(mask, tuple(b.shape[-2:]), b.device)
        r = optimize_bottleneck(replay.decode, b, handles, targets, config, keep, grid=grid, low_memory=low_memory)
    return r, b


def run_dragnoise(toy: Toy, xt, handles, targets, config, mask, grid, low_memory=False):
    r, _ = optimize_dragnoise(toy, xt, handles, targets, config, mask, grid, low_memory)
    return toy.sample(xt, toy.injected(r.bottleneck)), r.iterations, r.handles, r.bottleneck


def ratio_cos(change: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """change projected on want (1 = all the way), and their cosine."""
    c, w = change.flatten().double(), want.flatten().double()
    return float(c @ w / (w @ w).clamp_min(1e-12)), float(F.cosine_similarity(c, w, dim=0))


def oracle(toy: Toy, xt, z_in, z_expected):
    """The expected image's own bottleneck at the editing step, and what it does to the input's
    drag feature and x0 prediction."""
    replay = toy.record(xt)
    expected = toy.record(toy.invert(z_expected))
    b0, b_or = replay.bottleneck, expected.bottleneck
    with torch.inference_mode(False), torch.enable_grad(), replay:
        f_or = replay.decode(b_or.clone()).detach()
    diag = {}
    diag["oracle_feature_ratio"], diag["oracle_feature_cos"] = ratio_cos(f_or - replay.feature,
                                                                         expected.feature - replay.feature)
    diag["oracle_b_change"] = float((b_or - b0).abs().mean())
    diag["oracle_x0_ratio"], diag["oracle_x0_cos"] = ratio_cos(toy.x0_at_edit(xt, b_or) - toy.x0_at_edit(xt, b0),
                                                               z_expected - z_in)
    return b0, b_or, diag


def run_dragdiffusion(toy: Toy, xt, handles, targets, config, mask, grid):
    from bench.dragdiffusion import FullUNet, optimize_latent
    s, s_prev = toy.sigma, toy.sched[toy.start + 1]
    abar, abar_prev = 1 / (1 + s ** 2), 1 / (1 + s_prev ** 2)
    _, t_in = toy.unet_input(xt, s)
    with torch.inference_mode(False), torch.enable_grad():
        full = FullUNet(toy.unet, toy.ctx, t_in, patches=toy.model_patches)
        editable = editable_grid(mask, tuple(xt.shape[-2:]), xt.device)
        r = optimize_latent(full, (xt * abar ** 0.5).float(), handles, targets, grid, abar, abar_prev, config, editable)
    return toy.sample(r.latent / abar ** 0.5), r.iterations, r.handles, None


def score_case(case, image_in, image_out, mask=None) -> dict:
    """Per moved shape: centroid shift vs drag; PSNR outside every moved shape (before, after, expected)."""
    from dragnoise_toy.data import shape_mask
    scene = case.scene
    expected = case.expected()
    errs, lengths, along, lost = [], [], [], 0
    outside = np.ones(image_in.shape[:2], np.float32)
    for i, d in zip(case.moved, case.drags):
        before = shape_mask(image_in, scene, i)
        after = shape_mask(image_out, scene, i)
        want = expected.shapes[i].mask(scene.size) > 0
        outside *= (1 - np.maximum(np.maximum(before, after), want))
        length = math.hypot(*d)
        if after.sum() < 0.25 * before.sum():  # the shape is (mostly) gone: no position to measure
            errs.append(length)
            along.append(0.0)
            lost += 1
        else:
            sd = score_drag(before, after, d)
            errs.append(sd.error)
            along.append((sd.shift[0] * d[0] + sd.shift[1] * d[1]) / length ** 2)
        lengths.append(length)
    p = psnr(image_in, image_out, outside) if outside.sum() > 0 else float("nan")
    pm = psnr(image_in, image_out, 1 - mask) if mask is not None and (mask < 0.5).any() else None
    return {"error": float(np.mean(errs)), "drag_length": float(np.mean(lengths)),
            "success": all(e <= ln / 4 for e, ln in zip(errs, lengths)), "lost": lost,
            "shift_along": float(np.mean(along)),
            "psnr_outside": p, "psnr_outside_finite": p if math.isfinite(p) else 99.0,
            "psnr_outside_mask": None if pm is None else (pm if math.isfinite(pm) else 99.0)}


def summarize(rows: list[dict]) -> dict:
    mean = lambda k: statistics.fmean(r[k] for r in rows)  # noqa: E731
    masked = [r for r in rows if r.get("psnr_outside_mask") is not None]
    return {"cases": len(rows), "drag_length": mean("drag_length"), "mean_error": mean("error"),
            "mean_relative_error": statistics.fmean(r["error"] / r["drag_length"] for r in rows),
            "success_rate": mean("success"), "lost_shapes": sum(r["lost"] for r in rows),
            "mean_psnr_outside": mean("psnr_outside_finite"), "mean_iterations": mean("iterations"),
            "mean_psnr_outside_mask": (statistics.fmean(r["psnr_outside_mask"] for r in masked) if masked else None),
            "mean_shift_along": mean("shift_along"),
            "median_shift_along": statistics.median(r["shift_along"] for r in rows),
            "mean_handle_travel": (statistics.fmean(r["handle_travel"] for r in rows)
                                   if rows[0].get("handle_travel") is not None else None),
            "mean_opt_seconds": mean("opt_seconds"), "mean_total_seconds": mean("total_seconds")}


DIAGNOSTICS = ("oracle_feature_ratio", "oracle_feature_cos", "oracle_x0_ratio", "oracle_x0_cos", "dn_oracle_cos",
               "oracle_b_change", "dn_b_change")


def handle_travel(init, final, targets) -> float:
    """Mean share of the way (init -> target) the tracked handles went, along the drag."""
    shares = []
    for (hx, hy), (fx, fy), (tx, ty) in zip(init, final, targets):
        dx, dy = tx - hx, ty - hy
        shares.append(((fx - hx) * dx + (fy - hy) * dy) / max(dx * dx + dy * dy, 1e-9))
    return float(np.mean(shares))


def table(summary: dict) -> str:
    rows = ["| method | cases | drag length (px) | centroid error before -> after (px) | within 1/4 drag | "
            "lost shapes | PSNR outside (dB) | PSNR outside mask (dB) | shift along drag, mean / median | "
            "handle travel | iterations | opt. s | total s / case |", "|" + "---|" * 13]
    for m, s in summary.items():
        travel = "-" if s["mean_handle_travel"] is None else f"{100 * s['mean_handle_travel']:.0f}%"
        in_mask = "-" if s.get("mean_psnr_outside_mask") is None else f"{s['mean_psnr_outside_mask']:.1f}"
        rows.append(f"| {m} | {s['cases']} | {s['drag_length']:.1f} | {s['drag_length']:.1f} -> {s['mean_error']:.1f} "
                    f"({100 * s['mean_relative_error']:.0f}% of length) | {100 * s['success_rate']:.0f}% | "
                    f"{s['lost_shapes']} | {s['mean_psnr_outside']:.1f} | {in_mask} | "
                    f"{100 * s['mean_shift_along']:.0f}% / {100 * s['median_shift_along']:.0f}% | {travel} | "
                    f"{s['mean_iterations']:.1f} | {s['mean_opt_seconds']:.2f} | {s['mean_total_seconds']:.2f} |")
    return "\n".join(rows)


def diagnostics_table(diag: dict) -> str:
    """Mean oracle diagnostics (see the module docstring)."""
    names = [k for k in DIAGNOSTICS if k in diag]
    return "\n".join(["| " + " | ".join(names) + " |", "|" + "---|" * len(names),
                      "| " + " | ".join(f"{diag[k]:.2f}" for k in names) + " |"])


def merge(files: list[str], out: str | None) -> dict:
    """One report from runs over parts of the same cases (same settings): cases concatenated,
    summaries and diagnostics recomputed."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    report = {**runs[0], "command": " + ".join(r["command"] for r in runs),
              "cases": [c for r in runs for c in r["cases"]]}
    methods = list(runs[0]["summary"])
    report["summary"] = {m: summarize([c[m] for c in report["cases"]]) for m in methods}
    diag = [c["diagnostics"] for c in report["cases"] if "diagnostics" in c]
    report["diagnostics"] = {k: statistics.fmean(d[k] for d in diag) for k in DIAGNOSTICS
                             if diag and all(k in d for d in diag)}
    print(table(report["summary"]))
    if report["diagnostics"]:
        print()
        print(diagnostics_table(report["diagnostics"]))
    if out:
        Path(out).write_text(json.dumps(report, indent=1))
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--inversion-steps", type=int, default=35)
    ap.add_argument("--iterations", type=int, default=60)
    ap.add_argument("--end-step", type=int, default=0, help="t': the last steps run without injection (official 0)")
    ap.add_argument("--lr", type=float, default=0.01, help="DragNoise lr (official UI 0.01)")
    ap.add_argument("--dd-lr", type=float, default=0.01, help="DragDiffusion latent lr (official 0.01)")
    ap.add_argument("--lam", type=float, default=0.1)
    ap.add_argument("--r1", type=int, default=1, help="alignment patch radius, grid cells (official 1)")
    ap.add_argument("--r2", type=int, default=3, help="tracking search radius, grid cells (official 3)")
    ap.add_argument("--size", type=int, help="image size (default: the size the toy model was trained at)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (fp32 either way: the CPU's numbers)")
    ap.add_argument("--low-memory", action="store_true", help="DragNoise samples the feature on the grid (node option)")
    ap.add_argument("--methods", default=",".join(METHODS), help=f"of {METHODS + EXTRA_METHODS}")
    ap.add_argument("--masks", choices=("some", "all"), default="some",
                    help="all: every case gets the box around its drag's path as its editable mask "
                         "(default: every third case, as drag_cases makes them)")
    ap.add_argument("--band", type=float, default=48.0,
                    help="dragnoise_band: the editable band's radius around each handle -> target path, pixels")
    ap.add_argument("--start", type=int, default=0, help="run cases[start:] only (one half per CPU core)")
    ap.add_argument("--merge", nargs="+", metavar="JSON",
                    help="combine these runs' --json files (e.g. two --start halves) into one report, then exit")
    ap.add_argument("--json")
    ap.add_argument("--save-images", help="write input | expected | each method's output per case here")
    a = ap.parse_args(argv)
    if a.merge:
        return merge(a.merge, a.json)
    torch.set_num_threads(a.threads)
    import_comfy(a.device, stub_missing=a.device != "cpu", extra_args=("--force-fp32",))
    from dragnoise import DragConfig, KeepOutside, feathered, parse_points
    from dragnoise_toy.data import drag_cases
    from dragnoise_toy.model import SIZE

    a.size = a.size or SIZE
    toy = Toy(a.steps, a.inversion_steps, a.device, a.end_step)

    def config(lr):
        return DragConfig(iterations=a.iterations, lr=lr, lam=a.lam, r1=a.r1, r2=a.r2)
    methods = a.methods.split(",")
    cases = drag_cases(a.cases, a.seed, a.size)[a.start:]
    results = {m: [] for m in methods}
    per_case = []
    diag_rows = []
    for k, case in enumerate(cases):
        img = case.scene.render()
        size = case.scene.size
        grid = (size // 2, size // 2)  # supervision grid: half the image, as the node
        handles, targets = parse_points(case.pairs).scaled(0.5, 0.5)  # as the node
        if a.masks == "all" and case.mask is None:
            case = replace(case, mask=case.path_box())
        mask = case.mask_array()
        row = {"name": case.name, "pairs": case.pairs, "drags": case.drags, "mask": case.mask}
        outs = [img, case.expected().render()]
        t0 = time.perf_counter()
        z_in = toy.encode(img)
        trajectory, optimized = [], {}
        xt = toy.invert(z_in, trajectory)

        def kept(editable, to):  # propagation options that keep the image outside `editable` (pixels)
            return KeepOutside(feathered(editable_grid(editable, tuple(xt.shape[-2:]))), trajectory).transformer_options(to)
        t_inv = time.perf_counter() - t0
        b0 = b_or = None
        if "oracle" in methods:
            b0, b_or, diag = oracle(toy, xt, z_in, toy.encode(outs[1]))
            row["diagnostics"] = diag
        for m in methods:
            t1 = time.perf_counter()
            its, final, b = 0, None, None
            if m == "reconstruction":
                x = toy.sample(xt)
            elif m == "oracle":
                x = toy.sample(xt, toy.injected(b_or))
            elif m == "dragnoise_nomask":
                x, its, final, b = run_dragnoise(toy, xt, handles, targets, config(a.lr), None, grid, a.low_memory)
            elif m == "dragnoise_keep":  # the masked optimization (dragnoise's, if it ran), kept outside
                if "dragnoise" not in optimized:
                    r, _ = optimize_dragnoise(toy, xt, handles, targets, config(a.lr), mask, grid, a.low_memory)
                    optimized["dragnoise"] = (r.iterations, r.handles, r.bottleneck)
                its, final, b = optimized["dragnoise"]
                to = toy.injected(b)
                if mask is not None:
                    to = kept(mask, to)
                x = toy.sample(xt, to)
            elif m == "dragnoise_band":  # no painted mask: a band around the drag paths, mask loss and keeping
                band = parse_points(case.pairs).band(size, size, a.band)[0].numpy()  # as the node makes it
                r, _ = optimize_dragnoise(toy, xt, handles, targets, config(a.lr), band, grid, a.low_memory)
                its, final, b = r.iterations, r.handles, r.bottleneck
                x = toy.sample(xt, kept(band, toy.injected(b)))
            elif m == "dragnoise":
                x, its, final, b = run_dragnoise(toy, xt, handles, targets, config(a.lr), mask, grid, a.low_memory)
                optimized["dragnoise"] = (its, final, b)
            else:
                x, its, final, b = run_dragdiffusion(toy, xt, handles, targets, config(a.dd_lr), mask, grid)
            t_opt = time.perf_counter() - t1
            out = toy.decode(x)
            if m == "dragnoise_keep" and mask is not None:  # and in pixels, as the masked workflows save it
                out = keep_in_pixels(img, out, mask)
            s = score_case(case, img, out, mask)
            s.update(iterations=its, opt_seconds=t_opt if m in ("dragnoise", "dragnoise_nomask", "dragnoise_band", "dragdiffusion") else 0.0,
                     total_seconds=t_inv + time.perf_counter() - t1, tracked_handles=final,
                     handle_travel=None if final is None else handle_travel(handles, final, targets))
            if m == "dragnoise" and b_or is not None:
                row["diagnostics"]["dn_oracle_cos"] = ratio_cos(b - b0, b_or - b0)[1]
                row["diagnostics"]["dn_b_change"] = float((b - b0).abs().mean())
            results[m].append(s)
            row[m] = s
            outs.append(out)
        if "diagnostics" in row:
            diag_rows.append(row["diagnostics"])
        per_case.append(row)
        print(f"[{k + 1}/{len(cases)}] {case.name}: " + ", ".join(
            f"{m} err {row[m]['error']:.1f}/{row[m]['drag_length']:.1f} along {100 * row[m]['shift_along']:.0f}% "
            f"psnr {row[m]['psnr_outside']:.1f}" for m in methods)
            + ("" if "diagnostics" not in row else " | " + " ".join(f"{k} {v:.2f}" for k, v in row["diagnostics"].items())),
            file=sys.stderr, flush=True)
        if a.json:  # after every case: a run cut short still leaves its cases
            Path(a.json).write_text(json.dumps({"partial": True, "cases": per_case}, default=float))
        if a.save_images:
            from PIL import Image
            Path(a.save_images).mkdir(parents=True, exist_ok=True)
            Image.fromarray((np.concatenate(outs, 1) * 255).round().astype(np.uint8)).save(
                Path(a.save_images) / f"{case.name}.png")
    summary = {m: summarize(results[m]) for m in methods}
    diagnostics = {k: statistics.fmean(d[k] for d in diag_rows) for k in DIAGNOSTICS
                   if diag_rows and all(k in d for d in diag_rows)}
    import comfy.ldm.modules.attention as attention
    report = {"command": " ".join(["bench/accuracy.py"] + (argv if argv is not None else sys.argv[1:])),
              "machine": (f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch threads"
                          if a.device == "cpu" else torch.cuda.get_device_name()),
              "attention": attention.optimized_attention.__name__, "torch": torch.__version__,
              "steps": a.steps, "inversion_steps": a.inversion_steps, "end_step": a.end_step,
              "iterations": a.iterations, "size": a.size,
              "lr": a.lr, "dd_lr": a.dd_lr, "lam": a.lam, "r1": a.r1, "r2": a.r2,
              "low_memory": a.low_memory, "summary": summary, "diagnostics": diagnostics, "cases": per_case}
    print(table(summary))
    print()
    if diagnostics:
        print(diagnostics_table(diagnostics))
        print()
    print(json.dumps(summary, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
