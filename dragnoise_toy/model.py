"""The toy model: a TAESD-architecture VAE and a reduced-width SD1.5-layout UNet, built with ComfyUI's classes.

ComfyUI must be importable (its `comfy` package); nothing here runs at import time.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

# the committed weights; DRAGNOISE_TOY_WEIGHTS=dir points elsewhere (e.g. a fresh training run)
WEIGHTS = Path(os.environ.get("DRAGNOISE_TOY_WEIGHTS") or Path(__file__).resolve().parent / "weights")
UNET_FILE, ENCODER_FILE, DECODER_FILE = "toy_unet.safetensors", "taesd_encoder.safetensors", "taesd_decoder.safetensors"
CONTEXT_DIM = 64           # width of the constant conditioning the cross-attention sees
VAE_SCALE = 0.18215        # ComfyUI's TAESD (SD1.x) scale: the encoder output is the UNet-space latent
LATENT_GAIN = 3.0          # latent = LATENT_GAIN * (8x8 mean colour - 0.5) at initialization

# SD1.5 block structure (4 levels, 3 down/upsamplers, middle block, transformers on the first three
# levels and in the middle), one res block per level and reduced width.
UNET_CONFIG = dict(
    use_checkpoint=False, image_size=32, out_channels=4, use_spatial_transformer=True, legacy=False,
    adm_in_channels=None, in_channels=4, model_channels=32, num_res_blocks=[1, 1, 1, 1],
    channel_mult=[1, 2, 2, 4], transformer_depth=[1, 1, 1, 0], transformer_depth_output=[1, 1, 1, 1, 1, 1, 0, 0],
    transformer_depth_middle=1, use_linear_in_transformer=False, context_dim=CONTEXT_DIM, num_heads=8,
    num_head_channels=-1, use_temporal_attention=False, use_temporal_resblock=False)


def constant_context(batch: int = 1, dtype=torch.float32) -> torch.Tensor:
    """The trivial conditioning the UNet was trained with (one token of ones)."""
    return torch.ones(batch, 1, CONTEXT_DIM, dtype=dtype)


CONFIG_FILE = "toy_unet_config.json"  # written beside the weights by train.py; UNET_CONFIG if absent
TOY_KEY = "dragnoise_toy"  # toy settings in the configuration file that are no UNetModel arguments


def _config_file(weights=None) -> dict:
    f = Path(weights or WEIGHTS) / CONFIG_FILE
    return json.loads(f.read_text()) if f.is_file() else dict(UNET_CONFIG)


def unet_config(weights=None) -> dict:
    """The UNet configuration the weights in `weights` (default WEIGHTS) were trained with."""
    return {k: v for k, v in _config_file(weights).items() if k != TOY_KEY}


def toy_settings(weights=None) -> dict:
    """The toy's own settings saved with its weights, e.g. {"feature_skips": false}."""
    return dict(_config_file(weights).get(TOY_KEY, {}))


def toy_size(weights=None) -> int:
    """The scene size in pixels the toy in `weights` was trained at (its demo and benchmark use it)."""
    return int(toy_settings(weights).get("size", 128))


SIZE = toy_size()


# The settings the toy needs (its demo workflow, tests and bench/RESULTS.md use them; the node
# defaults stay official): an alignment patch that holds a whole shape (r1 12 grid cells for 128 px
# scenes, 24 for the shipped 256 px ones; official 1: inside a flat-coloured shape a 3x3 patch looks
# like all its neighbours, so the alignment loss was met by painting the shape's colour ahead of the
# handle and tracking followed the paint; a patch with the shape's edges in it can only be matched
# by moving the whole shape), a larger bottleneck change than SD's (lr 0.07 over up to 150
# iterations; 0.1 overshot at 256 px, 0.05 did not arrive) and an editing step at 30 of 50 inverted
# steps instead of 35 (t ~580, where its bottleneck still knows each shape's colour). See
# bench/RESULTS.md.
DEMO_ITERATIONS, DEMO_LR, DEMO_INVERSION_STEPS, DEMO_R1 = 150, 0.07, 30, 12 * SIZE // 128
# The demo's drag (its workflow and the server test): scene 11, a yellow disc on grey, dragged right
# by 26 px at 128 px; scenes scale with the size
_K = SIZE // 128
DEMO_SCENE, DEMO_POINTS = 11, [{"handle": [29 * _K, 34 * _K], "target": [55 * _K, 34 * _K]}]


class NoFeatureSkips:
    """output_block_patch: the decoder blocks up to DragNoise's feature layer get zeros for their
    encoder skips, so that feature is drawn from the bottleneck alone (see train.py)."""

    def __init__(self, last: int):
        self.last = last

    def __call__(self, h, hsp, transformer_options):
        return (h, torch.zeros_like(hsp)) if transformer_options["block"][1] <= self.last else (h, hsp)


def toy_patches(unet, weights=None) -> list:
    """The output-block patches the toy UNet in `weights` was trained with (part of the model)."""
    try:  # inside the pack as ComfyUI loads it, or top-level (training, benchmarks, tests)
        from ..dragnoise import feature_block_index
    except ImportError:
        from dragnoise import feature_block_index
    return [] if toy_settings(weights).get("feature_skips", True) else [NoFeatureSkips(feature_block_index(unet))]


def build_unet(config: dict | None = None):
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    return UNetModel(**(config or unet_config()), operations=comfy.ops.manual_cast)


def init_unet_(unet: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Default PyTorch init (ComfyUI's layers skip it), output conv zeroed as usual for diffusion UNets."""
    torch.manual_seed(seed)
    for m in unet.modules():  # the torch base class's reset_parameters (ComfyUI's ops override it with a no-op)
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm, torch.nn.LayerNorm):
            if isinstance(m, base):
                base.reset_parameters(m)
                break
    with torch.no_grad():
        for p in unet.out[-1].parameters():
            p.zero_()
    return unet


def _center(w, o, i, value):
    w[o, i, 1, 1] = value


def analytic_taesd(seed: int = 0):
    """A TAESD whose encoder is exactly 8x8 mean colour (channels 0-2, scaled; 3 = grey) and whose decoder
    upsamples it back (nearest + [1,2,1] blur per level). Blocks are identities (last conv zero, first
    two small random) so training can start from here."""
    from comfy.taesd.taesd import TAESD, Block
    g = torch.Generator().manual_seed(seed)
    t = TAESD()
    with torch.no_grad():
        for m in t.modules():
            if isinstance(m, Block):
                convs = [c for c in m.conv if isinstance(c, torch.nn.Conv2d)]
                for c in convs[:2]:
                    c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.02)
                    c.bias.zero_()
                convs[2].weight.zero_()
                convs[2].bias.zero_()
        enc = [m for m in t.taesd_encoder if isinstance(m, torch.nn.Conv2d)]
        dec = [m for m in t.taesd_decoder if isinstance(m, torch.nn.Conv2d)]
        for c in enc + dec:
            c.weight.zero_()
            if c.bias is not None:
                c.bias.zero_()
        for ch in range(3):
            _center(enc[0].weight, ch, ch, 1.0)
            for c in enc[1:4]:  # stride-2 convs: exact 2x2 mean (kernel taps 1,2 = pixels 2i, 2i+1)
                c.weight[ch, ch, 1:3, 1:3] = 0.25
            _center(enc[4].weight, ch, ch, LATENT_GAIN)
            enc[4].bias[ch] = -LATENT_GAIN / 2
            enc[4].weight[3, ch, 1, 1] = LATENT_GAIN / 3
        enc[4].bias[3] = -LATENT_GAIN / 2
        blur = torch.tensor([1.0, 2.0, 1.0])
        blur = (blur[:, None] * blur[None]) / 16
        for ch in range(3):
            _center(dec[0].weight, ch, ch, 1 / LATENT_GAIN)
            dec[0].bias[ch] = 0.5
            for c in dec[1:4]:
                c.weight[ch, ch] = blur
            _center(dec[4].weight, ch, ch, 1.0)
    return t


def mean_colour_latent(images: torch.Tensor) -> torch.Tensor:
    """What analytic_taesd's encoder computes, cheaply: images [B,3,H,W] in [0,1] -> latents [B,4,H/8,W/8]."""
    m = torch.nn.functional.avg_pool2d(images, 8)
    return torch.cat([m, m.mean(1, keepdim=True)], 1) * LATENT_GAIN - LATENT_GAIN / 2


# --- loading, the way ComfyUI's own loaders do it -------------------------------------------------
def load_unet_patcher(path=None):
    """A ModelPatcher for the toy UNet: SD15's model config with our unet_config (ComfyUI only
    auto-detects SD15 at width 320 / context 768), weights loaded under inference_mode."""
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    import comfy.utils
    sd = comfy.utils.load_torch_file(str(path or WEIGHTS / UNET_FILE), safe_load=True)
    mm = comfy.model_management
    with torch.inference_mode():
        cfg = comfy.supported_models.SD15(unet_config(Path(path).parent if path else None))
        load_device, offload = mm.get_torch_device(), mm.unet_offload_device()
        params = sum(v.numel() for v in sd.values())
        dtype = mm.unet_dtype(model_params=params, supported_dtypes=list(cfg.supported_inference_dtypes))
        cfg.set_inference_dtype(dtype, mm.unet_manual_cast(dtype, load_device, cfg.supported_inference_dtypes))
        model = cfg.get_model(sd, "").to(offload)
        model.load_model_weights(sd, "")
        patcher = comfy.model_patcher.ModelPatcher(model, load_device=load_device, offload_device=offload)
    for patch in toy_patches(model.diffusion_model, Path(path).parent if path else None):
        patcher.set_model_output_block_patch(patch)
    return patcher


def taesd_state_dict(encoder_path=None, decoder_path=None) -> dict:
    """The state dict ComfyUI's VAELoader builds for "taesd" (encoder + decoder files, SD1.x scale)."""
    import comfy.utils
    sd = {}
    for prefix, p in (("taesd_encoder.", encoder_path or WEIGHTS / ENCODER_FILE),
                      ("taesd_decoder.", decoder_path or WEIGHTS / DECODER_FILE)):
        for k, v in comfy.utils.load_torch_file(str(p), safe_load=True).items():
            sd[prefix + k] = v
    sd["vae_scale"] = torch.tensor(VAE_SCALE)
    sd["vae_shift"] = torch.tensor(0.0)
    return sd


def load_vae():
    import comfy.sd
    return comfy.sd.VAE(sd=taesd_state_dict())


def positive_conditioning():
    """CONDITIONING for the toy UNet: the constant context it was trained with."""
    return [[constant_context(), {}]]
