"""A small SDXL-family checkpoint built with ComfyUI's own classes, for tests and benchmarks.

ComfyUI's detection matches SDXL variants on model_channels 320, context_dim 2048, adm_in_channels
2816 and the exact input transformer depths; widths per level and res blocks are read from the
weights. The Segmind Vega depths ([0, 0, 1, 1, 2, 2], middle block without attention) at width 320
on every level make the smallest UNet it still loads as model_base.SDXL (with `y` = pooled text
embedding + size embeddings). The text side is the real SDXL pair (CLIP-L + CLIP-G, fixed sizes in
ComfyUI), the VAE a TAESD. All weights seeded random: plumbing and timing only.
"""
from __future__ import annotations

import inspect
import os
from pathlib import Path

import torch

from tiny_sd15 import seeded_init_

CKPT = "dragnoise_tiny_sdxl.safetensors"
# SDXL's own levels (3, two upsamplers, 2 res blocks each), Segmind Vega's attention depths
VEGA = dict(num_res_blocks=[2, 2, 2], channel_mult=[1, 1, 1], transformer_depth=[0, 0, 1, 1, 2, 2],
            transformer_depth_output=[0, 0, 0, 1, 1, 1, 2, 2, 2], transformer_depth_middle=-1)
# the real SDXL base UNet (2.6B parameters), for the benchmark
FULL = dict(num_res_blocks=[2, 2, 2], channel_mult=[1, 2, 4], transformer_depth=[0, 0, 2, 2, 10, 10],
            transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], transformer_depth_middle=10)


def unet_config(layout=VEGA, **over) -> dict:
    cfg = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
               num_classes="sequential", adm_in_channels=2816, in_channels=4, model_channels=320,
               use_linear_in_transformer=True, context_dim=2048, num_head_channels=64,
               use_temporal_attention=False, use_temporal_resblock=False)
    cfg.update(layout)
    cfg.update(over)
    return cfg


def build_model(layout=VEGA, seed: int = 0, dtype=torch.float32):
    """model_base.SDXL made through the supported-models entry ComfyUI's detection picks for `layout`."""
    import comfy.model_detection
    import comfy.ops
    cfg = unet_config(layout)
    model_config = comfy.model_detection.model_config_from_unet_config(cfg)
    assert model_config is not None, f"ComfyUI detects no model for {layout}"
    model_config.set_inference_dtype(dtype, dtype)
    model_config.custom_operations = comfy.ops.disable_weight_init
    model = model_config.get_model({})
    seeded_init_(model.diffusion_model, seed)
    return model


def write_checkpoint(models_dir, seed: int = 0) -> str:
    """checkpoints/dragnoise_tiny_sdxl.safetensors: UNet + CLIP-L/G + TAESD in the SDXL checkpoint layout,
    written by the model's own state_dict_for_saving. Returns the file name."""
    path = Path(models_dir) / "checkpoints" / CKPT
    if path.exists():
        return CKPT
    import safetensors.torch
    import comfy.latent_formats
    import comfy.sdxl_clip
    from comfy.taesd.taesd import TAESD
    path.parent.mkdir(parents=True, exist_ok=True)
    model = build_model(seed=seed, dtype=torch.float16)
    clip = seeded_init_(comfy.sdxl_clip.SDXLClipModel(dtype=torch.float16), seed)
    vae = seeded_init_(TAESD(), seed)
    with torch.no_grad():  # ComfyUI's taesd loader sets these for its files; a checkpoint carries them
        vae.vae_scale.fill_(comfy.latent_formats.SDXL().scale_factor)
        vae.vae_shift.zero_()
    parts = dict(clip_state_dict=clip.state_dict(), vae_state_dict=vae.state_dict())
    if "unet_state_dict" in inspect.signature(model.state_dict_for_saving).parameters:
        # newer ComfyUI (0.33) has the caller hand in the UNet's weights (ModelPatcher does); 0.3.75 read
        # them itself, and a positional CLIP there would be saved under the UNet's prefix, undetectable
        sd = model.state_dict_for_saving(model.diffusion_model.state_dict(), **parts)
    else:
        sd = model.state_dict_for_saving(**parts)
    sd = {k: v.to(torch.float16).contiguous() if v.is_floating_point() else v.contiguous() for k, v in sd.items()}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # other sessions may share the models folder
    safetensors.torch.save_file(sd, str(tmp))
    os.replace(tmp, path)
    return CKPT
