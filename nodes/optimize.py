"""Bottleneck optimization at the editing step (semantic alignment + handle tracking)."""
import math

import torch
import torch.nn.functional as F
from comfy_api.latest import io

from ..dragnoise import DecoderReplay, DragConfig, optimize_bottleneck
from .bridge import (BottleneckType, DragNoiseInputError, InversionType, PointsType, progress, require_unet,
                     run_sampler, single_latent, with_diffusion_wrapper)

LATENT_SCALE = 8  # image pixels per latent cell for the SD family


def outside_mask(mask, image_hw, bottleneck_hw):
    """1 on bottleneck cells entirely outside the editable mask (kept by the mask loss)."""
    m = mask if mask.ndim == 3 else mask[None]
    if tuple(m.shape[-2:]) != image_hw:
        raise DragNoiseInputError(f"mask is {m.shape[-1]}x{m.shape[-2]} but the image is {image_hw[1]}x{image_hw[0]}")
    editable = F.adaptive_max_pool2d((m[:1, None] > 0.5).float(), bottleneck_hw)
    return 1.0 - editable


class DragNoiseOptimize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        d = DragConfig()
        return io.Schema(
            node_id="DragNoiseOptimize",
            display_name="DragNoise Optimize Bottleneck",
            category="DragNoise",
            description="Optimizes the UNet bottleneck at the editing step so handle features move to their targets.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive"),
                InversionType.Input("inversion"),
                PointsType.Input("points"),
                io.Mask.Input("mask", optional=True, tooltip="Editable region (1 = may change); outside it the bottleneck is kept."),
                io.Int.Input("iterations", default=d.iterations, min=1, max=1000, tooltip="Official UI 60, DragBench 80."),
                io.Float.Input("lr", default=d.lr, min=1e-5, max=1.0, step=0.001, tooltip="Adam learning rate (official UI 0.01, DragBench 0.02)."),
                io.Float.Input("lam", default=d.lam, min=0.0, max=10.0, step=0.01, tooltip="Mask loss weight lambda (official UI 0.1, DragBench 0.2)."),
                io.Int.Input("r1", default=d.r1, min=0, max=8, tooltip="Alignment patch radius (official 1)."),
                io.Int.Input("r2", default=d.r2, min=1, max=16, tooltip="Tracking search radius (official 3)."),
            ],
            outputs=[BottleneckType.Output("bottleneck")],
        )

    @staticmethod
    def check(lr, lam):
        """The problem with these values, or None. A value from a link is None at validation time."""
        # JSON NaN passes ComfyUI's min/max checks (every comparison with NaN is false)
        for name, v, lo, hi in (("lr", lr, 1e-5, 1.0), ("lam", lam, 0.0, 10.0)):
            if not isinstance(v, (int, float)):  # None from a link; a word is reported by ComfyUI's type check
                continue
            if not math.isfinite(v):
                return f"{name} must be a finite number, got {v}"
            if not lo <= v <= hi:
                return f"{name} ({v:g}) must be in [{lo:g}, {hi:g}]"
        return None

    @classmethod
    def validate_inputs(cls, lr=None, lam=None):
        # ComfyUI skips its own min/max checks for inputs a validate_inputs takes: ranges are checked here too
        return cls.check(lr, lam) or True

    @classmethod
    def execute(cls, model, positive, inversion, points, iterations, lr, lam, r1, r2, mask=None) -> io.NodeOutput:
        problem = cls.check(lr, lam)  # again: linked values skip validation
        if problem:
            raise DragNoiseInputError(problem)
        require_unet(model)
        latent = single_latent({"samples": inversion["latent"]}, "inversion", model)
        lh, lw = latent.shape[-2:]
        height, width = lh * LATENT_SCALE, lw * LATENT_SCALE
        points.validate_for(width, height)
        # supervision grid: half the image resolution, as in the official code
        handles, targets = points.scaled(0.5, 0.5)
        if mask is not None and not bool((mask > 0.5).any()):
            mask = None  # nothing painted (e.g. Load Image's empty placeholder): no region constraint
        config = DragConfig(iterations=iterations, lr=lr, lam=lam, r1=r1, r2=r2)
        update = progress(iterations)
        out = {}

        def wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
            if out:  # several cond entries: optimize against the first only
                return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
            replay = DecoderReplay(executor.class_obj)
            result = executor(x, timesteps, context, y, control,
                              replay.recording_options(transformer_options, context, control), **kwargs)
            # `with replay`: the replayed blocks hold grad-safe weight copies until the loop ends
            with torch.inference_mode(False), torch.enable_grad(), replay:
                size = (height // 2, width // 2)
                bottleneck = replay.bottleneck
                keep = None
                if mask is not None:
                    keep = outside_mask(mask, (height, width), tuple(bottleneck.shape[-2:])).to(bottleneck.device)
                # handles live on the half-resolution grid; the feature is sampled there directly
                out["result"] = optimize_bottleneck(replay.decode, bottleneck, handles, targets, config, keep,
                                                    update, grid=size)
            return result

        def sampler(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
            model_k(x, sigmas[:1].expand(x.shape[0]), **(extra_args or {}))
            return x

        run_sampler(with_diffusion_wrapper(model, "dragnoise_optimize", wrapper), positive, latent,
                    [inversion["sigma"], 0.0], sampler)
        r = out["result"]
        bottleneck = {"bottleneck": r.bottleneck.cpu(), "sigma": inversion["sigma"], "schedule": inversion["schedule"],
                      "steps": inversion["steps"], "inversion_steps": inversion["inversion_steps"],
                      "iterations": r.iterations, "reached": r.reached, "handles": r.handles}
        return io.NodeOutput(bottleneck)
