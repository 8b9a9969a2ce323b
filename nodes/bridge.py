"""Glue between the engine and ComfyUI's sampling machinery.

Everything runs through comfy.sample.sample_custom with a sampler function of
ours, so the model is loaded, patched (LoRA), conditioned (ControlNet, area
conds, hooks) and cleaned up exactly as the core samplers do it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

import comfy.model_base
import comfy.model_management
import comfy.model_sampling
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
from comfy_api.latest import io

from ..dragnoise import DecoderReplay, NotAUNetError, feature_block_index

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


def with_diffusion_wrapper(model, key: str, wrapper):
    """A clone of `model` whose UNet forward goes through `wrapper`; the original is untouched."""
    m = model.clone()
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, key, wrapper)
    return m


def record_edit_step(model, positive, latent: torch.Tensor, sigma: float, work):
    """One UNet forward at `sigma` through ComfyUI sampling, recorded for replay; returns work(replay).

    `work` runs inside the forward (the model is loaded and patched then), outside inference mode,
    with the replayed blocks' grad-safe weights swapped in.
    """
    out = {}

    def wrapper(executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        if out:  # several cond entries: the first one is optimized
            return executor(x, timesteps, context, y, control, transformer_options, **kwargs)
        replay = DecoderReplay(executor.class_obj)
        result = executor(x, timesteps, context, y, control,
                          replay.recording_options(transformer_options, context, control, y), **kwargs)
        with torch.inference_mode(False), torch.enable_grad(), replay:
            out["result"] = work(replay)
        return result

    def sampler(model_k, x, sigmas, extra_args=None, callback=None, disable=None):
        model_k(x, sigmas[:1].expand(x.shape[0]), **(extra_args or {}))
        return x

    run_sampler(with_diffusion_wrapper(model, "dragnoise_record", wrapper), positive, latent, [sigma, 0.0], sampler)
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
