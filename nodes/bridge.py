"""Glue between the engine and ComfyUI's sampling machinery.

Everything runs through comfy.sample.sample_custom with a sampler function of
ours, so the model is loaded, patched (LoRA), conditioned (ControlNet, area
conds, hooks) and cleaned up exactly as the core samplers do it.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
import traceback

import torch
import torch.nn.functional as F
from PIL import Image

import comfy.model_base
import comfy.model_management
import comfy.model_sampling
import comfy.ops
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import latent_preview
from comfy_execution.utils import get_executing_context
from comfy_api.latest import io

from ..dragnoise import DecoderReplay, NotAUNetError, feature_block_index
from ..dragnoise.memory import check_fits, optimization_bytes

PointsType = io.Custom("DRAGNOISE_POINTS")
InversionType = io.Custom("DRAGNOISE_INVERSION")
BottleneckType = io.Custom("DRAGNOISE_BOTTLENECK")


class DragNoiseInputError(ValueError):
    """A user-facing problem with a node's inputs."""


def range_problem(**checks) -> str | None:
    """The first problem among name=(value, lo, hi), or None.

    ComfyUI skips its own min/max checks for inputs a validate_inputs takes, and JSON NaN passes
    every comparison. A value from a link is None at validation time and a non-number was already
    reported by ComfyUI's type check: both are skipped here (execute checks again).
    """
    for name, (v, lo, hi) in checks.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if not math.isfinite(v):
            return f"{name} must be a finite number, got {v}"
        if not lo <= v <= hi:
            return f"{name} ({v:g}) must be in [{lo:g}, {hi:g}]"
    return None


def progress(total: int):
    """Progress-bar update that also honours ComfyUI's interrupt (Cancel)."""
    pbar = comfy.utils.ProgressBar(total)

    def update(step: int, *_):
        comfy.model_management.throw_exception_if_processing_interrupted()
        pbar.update_absolute(step + 1, total)
    return update


PROGRESS_EVENT = "dragnoise.progress"  # listened to by web/dragnoise_points.js
PREVIEW_BUDGET = 0.05  # x0 previews take at most this share of the optimization's time


PREVIEW_VAE = "dragnoise_preview_vae"  # model_options key: a VAE that previews this model's latents


class VAEPreviewer(latent_preview.LatentPreviewer):
    """Previews with a model's own small VAE (the toy model's: SD1.5's Latent2RGB colours don't fit it)."""

    def __init__(self, vae, latent_format):
        self.vae, self.fmt = vae, latent_format

    @torch.inference_mode()
    def decode_latent_to_preview(self, x0):
        img = self.vae.decode(self.fmt.process_out(x0[:1]))[0]
        return Image.fromarray((img.clamp(0, 1) * 255).byte().cpu().numpy())


def previewer_for(model):
    """ComfyUI's latent previewer for `model` (TAESD or Latent2RGB per --preview-method); with previews
    off (ComfyUI's default) its Latent2RGB one, cheap, so the drag preview is on by default."""
    fmt = model.get_model_object("latent_format")
    if model.model_options.get(PREVIEW_VAE) is not None:
        return VAEPreviewer(model.model_options[PREVIEW_VAE], fmt)
    p = latent_preview.get_previewer(model.load_device, fmt)
    if p is None and getattr(fmt, "latent_rgb_factors", None) is not None:
        p = latent_preview.Latent2RGBPreviewer(fmt.latent_rgb_factors, getattr(fmt, "latent_rgb_factors_bias", None))
    return p


class LiveProgress:
    """Progress bar and Cancel on every iteration; what the drag looks like so far every few: the
    tracked handles and alignment loss to the point editor (a PromptServer message, every
    `trail_every` iterations) and preview(info), an x0 estimate, as this node's progress-bar preview
    (every `preview_every`, skipped while previews have taken over PREVIEW_BUDGET of the loop's time,
    whatever the model and previewer cost). 0 turns either off."""

    def __init__(self, total: int, trail_every: int, preview_every: int, start, targets, scale: float, preview=None):
        ctx = get_executing_context()
        self.node, self.prompt_id = (ctx.node_id, ctx.prompt_id) if ctx else (None, None)
        self.pbar = comfy.utils.ProgressBar(total)
        self.trail_every, self.preview_every = trail_every, preview_every if preview else 0
        self.scale, self.preview = scale, preview
        self.start, self.targets = self.pixels(start), self.pixels(targets)
        self.began, self.spent = time.perf_counter(), 0.0

    def pixels(self, cells):  # supervision grid -> image pixels
        return [[float(x) * self.scale, float(y) * self.scale] for x, y in cells]

    def send(self, step: int, total: int, handles, loss, done=False):
        # Looked up, not imported: with ComfyUI used as a library (no PromptServer) there is no one to
        # tell and importing server.py would start its machinery or fail; server.py is loaded wherever one runs.
        server = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
        if not self.trail_every or self.node is None or server is None or server.client_id is None:
            return
        server.send_sync(PROGRESS_EVENT, {
            "node": self.node, "prompt_id": self.prompt_id, "step": step, "total": total, "done": done,
            "loss": None if loss is None else float(loss), "start": self.start, "targets": self.targets,
            "handles": self.pixels(handles)}, server.client_id)

    def __call__(self, step: int, total: int, info: dict):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if self.trail_every and (step + 1) % self.trail_every == 0:
            self.send(step + 1, total, info["handles"].tolist(), info["loss"])  # the loop syncs every step anyway
        image = None
        if self.preview_every and (step + 1) % self.preview_every == 0 and \
                self.spent <= PREVIEW_BUDGET * (time.perf_counter() - self.began):
            t = time.perf_counter()
            image = self.preview(info)
            self.spent += time.perf_counter() - t
        self.pbar.update_absolute(step + 1, total, image)


def ddim_sigmas(model, steps: int) -> list[float]:
    """ComfyUI's ddim_uniform schedule: the official DDIM timesteps (981 ... 1), then 0."""
    ms = model.get_model_object("model_sampling")
    return [float(s) for s in comfy.samplers.calculate_sigmas(ms, "ddim_uniform", steps)]


def single_latent(latent: dict, what: str = "latent", model=None) -> torch.Tensor:
    samples = latent["samples"]
    if samples.ndim != 4:
        raise DragNoiseInputError(f"{what} must be an image latent [B,C,H,W], got shape {tuple(samples.shape)}")
    if samples.shape[0] != 1:
        raise DragNoiseInputError(f"{what} holds a batch of {samples.shape[0]}; DragNoise edits one image at a time "
                                  "(pick one with Latent From Batch)")
    if model is not None:
        fmt = model.get_model_object("latent_format")
        want = getattr(fmt, "latent_channels", None)
        if want is not None and samples.shape[1] != want:
            raise DragNoiseInputError(
                f"{what} has {samples.shape[1]} channels but this model works on {want}-channel latents "
                f"({type(fmt).__name__}): encode the image with the VAE that belongs to the model")
    return samples


SUPPORTED = ("supported: SD1.x, SD2.x and SDXL-family UNets with the discrete DDPM schedule, eps or v-prediction "
             "(also through ModelSamplingDiscrete, zsnr included)")


def require_unet(model, what: str = "model"):
    """Fail early, before any sampling, on a model the method cannot serve, naming its family."""
    family = type(getattr(model, "model", None)).__name__
    try:
        feature_block_index(model.get_model_object("diffusion_model"))
    except NotAUNetError as e:  # a DiT (SD3, Flux), Stable Cascade
        raise NotAUNetError(f"{what}: the {family} model is not supported: {e}") from None
    if isinstance(model.model, comfy.model_base.SDXLRefiner):
        raise NotAUNetError(f"{what}: the SDXL refiner is not supported: it is trained for the last, low-noise steps "
                            f"only and the drag is edited at timestep ~680; use the SDXL base model ({SUPPORTED})")
    ms = model.get_model_object("model_sampling")
    # the inversion walks the official DDIM timesteps of a discrete schedule, and turns x0 into noise
    # with x = x0 + sigma * eps: true for eps and v-prediction, not for EDM/flow/x0 parameterizations
    discrete = isinstance(ms, comfy.model_sampling.ModelSamplingDiscrete) and \
        type(ms).timestep is comfy.model_sampling.ModelSamplingDiscrete.timestep
    pred = type(ms).calculate_denoised
    if not discrete or pred not in (comfy.model_sampling.EPS.calculate_denoised,
                                    comfy.model_sampling.V_PREDICTION.calculate_denoised):
        schedule = next(c.__name__ for c in type(ms).__mro__[1:] if issubclass(c, torch.nn.Module))
        prediction = next((c.__name__ for c in type(ms).__mro__[1:] if not issubclass(c, torch.nn.Module)
                           and c is not object), "?")
        raise NotAUNetError(f"{what}: the {family} model samples with {schedule} and {prediction} prediction (e.g. "
                            f"Playground v2.5's EDM, or x0/LCM/flow), which DragNoise cannot invert; {SUPPORTED}")


def run_sampler(model, positive, latent: torch.Tensor, sigmas, sampler_fn) -> torch.Tensor:
    """Run `sampler_fn(model_k, x, sigmas, extra_args, callback, disable)` inside ComfyUI sampling.

    The guidance is 1.0 (positive only), as in the official inversion and optimization.
    """
    sampler = comfy.samplers.KSAMPLER(sampler_fn)
    sigmas = torch.tensor(sigmas, dtype=torch.float32)
    noise = torch.zeros_like(latent)
    return comfy.sample.sample_custom(model, noise, 1.0, sampler, sigmas, positive, positive, latent,
                                      disable_pbar=True, seed=0)


def with_wrappers(model, diffusion_model=None, apply_model=None):
    """A clone of `model` with (key, wrapper) pairs around its UNet forward (`diffusion_model`) and/or
    its apply_model (sampler latent in, denoised out); the original is untouched."""
    m = model.clone()
    for kind, pair in ((comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, diffusion_model),
                       (comfy.patcher_extension.WrappersMP.APPLY_MODEL, apply_model)):
        if pair is not None:
            m.add_wrapper_with_key(kind, *pair)
    return m


def _sdpa_attention(func, *args, **kwargs):
    # the memory count runs on meta tensors, which the CPU's default attention (sub-quadratic: it asks
    # the device for its free memory) cannot take; count with PyTorch SDPA, ComfyUI's choice on CUDA
    import comfy.ldm.modules.attention as attention
    return attention.attention_pytorch(*args, **kwargs)


# the host's exceptions that end a drag wherever they are raised (never taken for a failed count or capture)
FATAL = (comfy.model_management.InterruptProcessingException, torch.OutOfMemoryError)


def refuse_if_too_large(model, replay, grid, low_memory: bool, captured: bool = False) -> None:
    """Raise EditTooLarge before the optimization starts when its memory (counted on the meta device)
    exceeds what is free on the model's device, after unloading other models as ComfyUI's samplers do."""
    try:
        need = optimization_bytes(replay, grid, low_memory, {"optimized_attention_override": _sdpa_attention},
                                  captured=captured)["total"]
    except FATAL:  # a Cancel (ComfyUI raises it inside ops) is the user's, not a failed count
        raise
    except Exception as e:  # a count that fails (an unusual patch on meta tensors) must not stop a drag
        logging.warning("DragNoise: memory estimate skipped (%s: %s)", type(e).__name__, e)
        return
    mm = comfy.model_management
    device = replay.bottleneck.device
    free = mm.get_free_memory(device)
    if need > free and device.type != "cpu":
        mm.free_memory(need, device, keep_loaded=[m for m in mm.current_loaded_models if m.model.is_clone(model)])
        free = mm.get_free_memory(device)
    check_fits(need, free)


def capture_mode(device) -> str | None:
    """"graph" where the optimization may replay its iterations as a CUDA graph: asked for with
    DRAGNOISE_CUDA_GRAPHS=1 (experimental), on CUDA. However ComfyUI holds the weights (fully loaded,
    lowvram, DynamicVRAM), the replay computes from its own copies on the GPU (host_weights), so a
    graph never replays ComfyUI's per-call weight transfers. Else None: eager."""
    if os.environ.get("DRAGNOISE_CUDA_GRAPHS", "0") != "1" or torch.device(device).type != "cuda":
        return None
    return "graph"


def host_weights(layer, like):
    """(weight, bias) as ComfyUI computes them for this layer's forward now, copied: its cast to the
    compute dtype and device, LoRA patches applied on the fly (lowvram), DynamicVRAM's copy in VRAM,
    a quantized weight dequantized. ComfyUI's own layers are asked through comfy.ops.cast_bias_weight
    (what their forward calls); other layers give their own tensors. The copy is needed: what the cast
    returns may be an inference tensor, the layer's own parameter, or memory ComfyUI reuses for the next
    layer (a cast buffer, a DynamicVRAM page). Called once per edit for each replayed layer."""
    if not hasattr(layer, "comfy_cast_weights"):
        return layer._parameters.get("weight"), layer._parameters.get("bias")
    with torch.inference_mode(False), torch.no_grad():
        cast = comfy.ops.cast_bias_weight(layer, torch.empty(0, dtype=like.dtype, device=like.device))
        weight, bias = cast[0], cast[1]  # later versions may return more (an offload stream)

        def own(t):
            if t is None:
                return None
            if type(t) not in (torch.Tensor, torch.nn.Parameter) and hasattr(t, "dequantize"):
                t = t.dequantize()
            return t.to(like.device, like.dtype, copy=True)
        return own(weight), own(bias)


@contextlib.contextmanager
def releasing():
    """On any exception (Cancel, out of memory, a bad input found late), free the edit's tensors now.

    ComfyUI keeps the exception until it has reported it, and its traceback keeps every frame's
    locals (the replayed activations, Adam's state) alive with it; clearing those frames lets the
    memory go at once, and the cached blocks are returned, so the next drag finds it free. The
    traceback's text (what ComfyUI shows) is kept.
    """
    try:
        yield
    except BaseException as e:
        traceback.clear_frames(e.__traceback__)
        comfy.model_management.soft_empty_cache()
        raise


def record_edit_step(model, positive, latent: torch.Tensor, sigma: float, work, check=None):
    """One UNet forward at `sigma` through ComfyUI sampling, recorded for replay; returns work(replay, x0).

    `work` runs inside the forward (the model is loaded and patched then), outside inference mode,
    with the replayed blocks' grad-safe weights swapped in. x0(unet_output) is the denoised estimate
    (sampler latent space, as previewers take it) for a UNet output at this step. check(replay), if
    given, runs after the recording and before anything is copied for autograd (the memory check).
    """
    out, state = {}, {}
    ms = model.get_model_object("model_sampling")

    def x0(unet_output):
        return ms.calculate_denoised(state["sigma"].to(unet_output.device), unet_output.float(), state["x"])

    def wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        if out:  # several cond entries: the first one is optimized
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
        replay = DecoderReplay(executor.class_obj, effective=host_weights)
        replay.out_dtype = x.dtype
        result = executor(x, timesteps, context, y, control,
                          replay.recording_options(transformer_options, context, control, y), **kwargs)
        try:
            if check is not None:
                check(replay)
            with torch.inference_mode(False), torch.enable_grad(), replay:
                out["result"] = work(replay, x0)
        finally:  # also on Cancel or out of memory: the recorded forward and weight copies go now
            replay.release()
        return result

    def sampler(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        state["x"], state["sigma"] = x[:1], sigmas[:1]
        model_k(x, sigmas[:1].expand(x.shape[0]), **(extra_args or {}))
        return x

    run_sampler(with_wrappers(model, diffusion_model=("dragnoise_record", wrapper)), positive, latent, [sigma, 0.0], sampler)
    return out["result"]


def kept_region(mask, image_hw, bottleneck_hw):
    """1 on bottleneck cells entirely outside the editable mask (held by the mask loss), or None
    when nothing is painted (e.g. Load Image's empty placeholder mask)."""
    if mask is None or not bool((mask > 0.5).any()):
        return None
    m = mask if mask.ndim == 3 else mask[None]
    if tuple(m.shape[-2:]) != tuple(image_hw):
        raise DragNoiseInputError(f"mask is {m.shape[-1]}x{m.shape[-2]} but the image is {image_hw[1]}x{image_hw[0]}")
    return 1.0 - F.adaptive_max_pool2d((m[:1, None] > 0.5).float(), bottleneck_hw)
