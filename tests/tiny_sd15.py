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


def write_test_models(models_dir, seed: int = 0) -> dict:
    """Write a shallow SD1.5 UNet, a TAESD VAE, a CLIP-L and a ControlNet (all seeded random) where
    the core loaders look: diffusion_models/, vae_approx/, text_encoders/, controlnet/. Returns the
    file names."""
    from pathlib import Path

    import safetensors.torch
    import comfy.ops
    import comfy.sd1_clip
    from comfy.taesd.taesd import TAESD

    models_dir = Path(models_dir)
    names = {"unet": "dragnoise_tiny_sd15.safetensors", "clip": "dragnoise_tiny_clip_l.safetensors", "vae": "taesd",
             "controlnet": "dragnoise_tiny_controlnet.safetensors"}
    unet_path = models_dir / "diffusion_models" / names["unet"]
    if not unet_path.exists():
        unet_path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(unet_state_dict(seed=seed), str(unet_path))
    vae_dir = models_dir / "vae_approx"
    if not (vae_dir / "taesd_decoder.safetensors").exists():
        vae_dir.mkdir(parents=True, exist_ok=True)
        taesd = seeded_init_(TAESD(), seed)
        for part in ("encoder", "decoder"):
            sd = {k: v.contiguous() for k, v in getattr(taesd, f"taesd_{part}").state_dict().items()}
            safetensors.torch.save_file(sd, str(vae_dir / f"taesd_{part}.safetensors"))
    clip_path = models_dir / "text_encoders" / names["clip"]
    if not clip_path.exists():
        clip_path.parent.mkdir(parents=True, exist_ok=True)
        clip = seeded_init_(comfy.sd1_clip.SDClipModel(dtype=torch.float32), seed)
        sd = {k[len("transformer."):]: v.to(torch.float16).contiguous()
              for k, v in clip.state_dict().items() if k.startswith("transformer.")}
        safetensors.torch.save_file(sd, str(clip_path))
    cn_path = models_dir / "controlnet" / names["controlnet"]
    if not cn_path.exists():  # the shallow layout as a ControlNet (nonzero zero-convs: it really steers)
        import comfy.cldm.cldm
        cn_path.parent.mkdir(parents=True, exist_ok=True)
        cfg = unet_config()
        cfg.pop("out_channels")
        cn = seeded_init_(comfy.cldm.cldm.ControlNet(**cfg, hint_channels=3, operations=comfy.ops.disable_weight_init),
                          seed)
        safetensors.torch.save_file({k: v.to(torch.float16).contiguous() for k, v in cn.state_dict().items()},
                                    str(cn_path))
    return names
