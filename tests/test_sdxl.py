"""SDXL family end to end: ComfyUI's own SDXL model class (ADM conditioning `y` = pooled text + size
embeddings), its checkpoint loader, CLIP Text Encode (SDXL), the four nodes and KSampler (Advanced)."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

import graphs
import tiny_sdxl
from comfy_server import error_of

DRAG = [{"handle": [45, 64], "target": [70, 64]}]


def test_replay_of_an_sdxl_model_includes_the_adm_embedding(comfy_cpu):
    # model_base.SDXL with a reduced unet_config (the SDXL supported-model entry, tiny widths): the host
    # adds label_emb(y) to the time embedding after the emb patch point; the replay must too, or the
    # optimized decoder sees another timestep/size/pooled embedding than the sampler
    import comfy.ops
    import comfy.supported_models
    from dragnoise import DecoderReplay
    from tiny_sd15 import seeded_init_
    cfg = tiny_sdxl.unet_config(dict(num_res_blocks=[1, 1, 1], channel_mult=[1, 2, 2], transformer_depth=[0, 1, 1],
                                     transformer_depth_output=[0, 0, 1, 1, 1, 1], transformer_depth_middle=1),
                                model_channels=32, context_dim=64, num_head_channels=16, adm_in_channels=64 + 1536)
    mc = comfy.supported_models.SDXL(cfg)
    mc.custom_operations = comfy.ops.disable_weight_init
    with torch.inference_mode():
        model = mc.get_model({})
        seeded_init_(model.diffusion_model, 4)
        g = torch.Generator().manual_seed(5)
        ctx, pooled = torch.randn(1, 7, 64, generator=g), torch.randn(1, 64, generator=g)
        y = model.encode_adm(pooled_output=pooled, width=128, height=128)
        assert y.shape == (1, 64 + 1536)
        replay = DecoderReplay(model.diffusion_model)
        model.diffusion_model(torch.randn(1, 4, 16, 16, generator=g), torch.tensor([681.0]), ctx, y,
                              transformer_options=replay.recording_options({}, ctx, None, y))
    assert type(model).__name__ == "SDXL" and replay.index == 3  # the second (last) upsampling level
    with torch.inference_mode(False), torch.enable_grad():
        torch.testing.assert_close(replay.decode(replay.bottleneck), replay.feature.clone(), rtol=1e-5, atol=1e-5)
