"""Small SD1.5-family models built with ComfyUI's own classes, for tests and benchmarks.

ComfyUI recognizes SD1.5 by model_channels 320 and context_dim 768 and reads
depth and channel multipliers from the weights, so a shallow UNet (one res
block per level, channel_mult [1,1,1,1], ~74M parameters) loads through the
core loaders as SD15. Weights are seeded random: fine for plumbing and timing.
"""
from __future__ import annotations

import torch

SHALLOW = dict(num_res_blocks=[1, 1, 1, 1], channel_mult=[1, 1, 1, 1],
               transformer_depth=[1, 1, 1, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 0, 0])
FULL = dict(num_res_blocks=[2, 2, 2, 2], channel_mult=[1, 2, 4, 4],
            transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0], transformer_depth_output=[1] * 9 + [0] * 3)


def unet_config(layout=SHALLOW, **over):
    cfg = dict(use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
               adm_in_channels=None, in_channels=4, model_channels=320, transformer_depth_middle=1,
               use_linear_in_transformer=False, context_dim=768, num_heads=8,
               use_temporal_attention=False, use_temporal_resblock=False)
    cfg.update(layout)
    cfg.update(over)
    return cfg


def seeded_init_(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Deterministic, variance-preserving random weights (ComfyUI's layers skip init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
            elif name.endswith("weight"):
                p.fill_(1.0)
            else:
                p.zero_()
    return module


def unet_state_dict(layout=SHALLOW, seed: int = 0, dtype=torch.float16, **over) -> dict:
    """Raw UNet weights (the keys a diffusion_models/*.safetensors file holds)."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    unet = UNetModel(**unet_config(layout, **over), operations=comfy.ops.disable_weight_init)
    seeded_init_(unet, seed)
    return {k: v.to(dtype).contiguous() for k, v in unet.state_dict().items()}


def load_model(sd: dict):
    """A ModelPatcher made the way ComfyUI's UNETLoader makes it (inference-mode weights)."""
    import comfy.sd
    with torch.inference_mode():
        return comfy.sd.load_diffusion_model_state_dict(sd)
