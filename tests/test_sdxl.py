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


@pytest.fixture(scope="module")
def small_sdxl(comfy_cpu):
    """model_base.SDXL from the SDXL supported-model entry with a reduced unet_config (tiny widths)."""
    return sdxl_model(dict(num_res_blocks=[1, 1, 1], channel_mult=[1, 2, 2], transformer_depth=[0, 1, 1],
                            transformer_depth_output=[0, 0, 1, 1, 1, 1], transformer_depth_middle=1), seed=4)


def sdxl_model(layout: dict, seed: int):
    """model_base.SDXL with `layout` at tiny widths, seeded, weights as inference tensors (as loaded)."""
    import comfy.ops
    import comfy.supported_models
    from tiny_sd15 import seeded_init_
    cfg = tiny_sdxl.unet_config(layout, model_channels=32, context_dim=64, num_head_channels=16,
                                adm_in_channels=64 + 1536)
    mc = comfy.supported_models.SDXL(cfg)
    mc.custom_operations = comfy.ops.disable_weight_init
    with torch.inference_mode():
        model = mc.get_model({})
        seeded_init_(model.diffusion_model, seed)
    return model


def record(model, size):
    """One forward of `model` on a size x size image's latent, recorded for replay, with SDXL's y."""
    from dragnoise import DecoderReplay
    g = torch.Generator().manual_seed(5)
    with torch.inference_mode():
        ctx, pooled = torch.randn(1, 7, 64, generator=g), torch.randn(1, 64, generator=g)
        y = model.encode_adm(pooled_output=pooled, width=size, height=size)
        assert y.shape == (1, 64 + 1536)
        replay = DecoderReplay(model.diffusion_model)
        model.diffusion_model(torch.randn(1, 4, size // 8, size // 8, generator=g), torch.tensor([681.0]), ctx, y,
                              transformer_options=replay.recording_options({}, ctx, None, y))
    return replay


def test_replay_of_an_sdxl_model_includes_the_adm_embedding(small_sdxl):
    # the host adds label_emb(y) to the time embedding after the emb patch point; the replay must too,
    # or the optimized decoder sees another timestep/size/pooled embedding than the sampler
    replay = record(small_sdxl, 128)
    assert type(small_sdxl).__name__ == "SDXL" and replay.index == 3  # the second (last) upsampling level
    with torch.inference_mode(False), torch.enable_grad():
        torch.testing.assert_close(replay.decode(replay.bottleneck), replay.feature.clone(), rtol=1e-5, atol=1e-5)


def test_a_unet_without_middle_block_drags_its_encoder_output(comfy_cpu):
    # KOALA-700M: ComfyUI detects it as an SDXL variant and builds it with middle_block = None; what
    # enters the decoder is then the encoder's output, the bottleneck DragNoise optimizes and injects
    import comfy.model_detection
    from dragnoise import PropagationWindow
    koala = dict(num_res_blocks=[1, 1, 1], channel_mult=[1, 2, 4], transformer_depth=[0, 2, 5],
                 transformer_depth_output=[0, 0, 2, 2, 5, 5], transformer_depth_middle=-2)
    assert type(comfy.model_detection.model_config_from_unet_config(tiny_sdxl.unet_config(koala))).__name__ == \
        "KOALA_700M"
    model = sdxl_model({**koala, "transformer_depth": [0, 1, 1], "transformer_depth_output": [0, 0, 1, 1, 1, 1]}, seed=6)
    assert model.diffusion_model.middle_block is None
    replay = record(model, 128)
    with torch.inference_mode(False), torch.enable_grad():
        torch.testing.assert_close(replay.decode(replay.bottleneck), replay.feature.clone(), rtol=1e-5, atol=1e-5)
    window = PropagationWindow(replay.bottleneck.clone() + 1.0, 10.0, 0.1)
    to = window.transformer_options(sigmas=torch.tensor([3.0]))
    with torch.inference_mode():
        g = torch.Generator().manual_seed(7)
        x, ctx = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 7, 64, generator=g)
        y = model.encode_adm(pooled_output=torch.randn(1, 64, generator=g), width=128, height=128)
        plain = model.apply_model(x, torch.tensor([3.0]), c_crossattn=ctx, y=y)
        patched = model.apply_model(x, torch.tensor([3.0]), c_crossattn=ctx, y=y, transformer_options=to)
    assert not torch.equal(plain, patched)


def test_at_1024_px_the_feature_is_at_latent_resolution_like_sd15_at_512(small_sdxl):
    # SD1.5's official feature (decoder level 3, output_blocks[8]) is at 1/8 of the image: 64 at 512 px,
    # on a 256 grid (half the image), 4 grid cells per feature cell. SDXL's last upsampling level gives
    # 1/8 too: 128 at 1024 px on a 512 grid, the same 4 cells, so r1/r2 (grid cells, 2 image px each)
    # cover the same image pixels and feature cells. Its bottleneck is 1/32 (SD1.5: 1/64).
    replay = record(small_sdxl, 1024)
    assert tuple(replay.feature.shape[-2:]) == (128, 128)
    assert tuple(replay.bottleneck.shape[-2:]) == (32, 32)
    from dragnoise.optimize import _grid_coords
    f = replay.feature
    # image pixel (400, 520) -> grid (200, 260) -> the feature coordinate of pixel/8, as SD1.5's at 512 px
    c = _grid_coords(torch.tensor([200.0]), torch.tensor([260.0]), f, (512, 512))
    x = (float(c[0, 0]) + 1) * 128 / 2 - 0.5
    y = (float(c[0, 1]) + 1) * 128 / 2 - 0.5
    assert abs(x - (400 / 8 - 0.375)) < 1e-4 and abs(y - (520 / 8 - 0.375)) < 1e-4


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def sdxl_drag(ckpt, prefix, sampling=None, cond_size=1024, **kw):
    """graphs.drag_prompt on the SDXL checkpoint; sampling = (ModelSampling node, its inputs) patches the MODEL."""
    nodes, refs = graphs.sdxl_sources(ckpt, cond_size=cond_size)
    if sampling is not None:
        cls, inputs = sampling
        nodes = {**nodes, "ms": {"class_type": cls, "inputs": {"model": ["ckpt", 0], **inputs}}}
        refs = {**refs, "model": ["ms", 0]}
    return graphs.drag_prompt(DRAG, **{"steps": 10, "inversion_steps": 7, "iterations": 3, **kw}, prefix=prefix,
                              sources=(nodes, refs))


def test_checkpoint_is_detected_as_sdxl_family(comfy_cpu, models_dir, sdxl_checkpoint):
    # what CheckpointLoaderSimple will decide, from the UNet keys alone (the CLIP-G is not loaded here)
    import comfy.model_detection
    import comfy.model_base
    from safetensors import safe_open
    prefix = "model.diffusion_model."
    with safe_open(str(models_dir / "checkpoints" / sdxl_checkpoint), "pt") as f:
        sd = {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    config = comfy.model_detection.model_config_from_unet(sd, prefix)
    assert type(config).__name__ == "Segmind_Vega"
    assert config.get_model(sd, prefix).__class__ is comfy.model_base.SDXL
    assert config.unet_config["adm_in_channels"] == 2816 and config.unet_config["context_dim"] == 2048


def test_sdxl_drag_end_to_end_through_the_checkpoint_loader(server, sdxl_checkpoint):
    entry = server.run(sdxl_drag(sdxl_checkpoint, "sdxl_drag"))
    dragged = pixels(server.image(entry, "save"))
    assert dragged.shape == (graphs.SIZE, graphs.SIZE, 3)
    p = sdxl_drag(sdxl_checkpoint, "sdxl_nopatch")
    p["sample"]["inputs"]["model"] = ["ckpt", 0]
    assert not np.array_equal(dragged, pixels(server.image(server.run(p), "save"))), "the drag changed nothing"
    # the size embeddings reach the UNet through y (model_base.SDXL.encode_adm): other sizes, other result
    other = pixels(server.image(server.run(sdxl_drag(sdxl_checkpoint, "sdxl_512", cond_size=512)), "save"))
    assert not np.array_equal(dragged, other)


def test_sdxl_v_prediction_with_zero_terminal_snr_drags_end_to_end(server, sdxl_checkpoint):
    # v-prediction SDXL fine-tunes (e.g. "v_pred" + "ztsnr" checkpoints) get exactly this model_sampling
    vpred = ("ModelSamplingDiscrete", {"sampling": "v_prediction", "zsnr": True})
    from test_server import assert_drag_changed
    entry = server.run(graphs.with_unpatched(sdxl_drag(sdxl_checkpoint, "sdxl_vpred", sampling=vpred)))
    assert pixels(server.image(entry, "save")).shape == (graphs.SIZE, graphs.SIZE, 3)
    assert_drag_changed(server, entry)


@pytest.mark.parametrize("node", ["invert", "optimize", "patch"])
def test_edm_sampled_sdxl_is_refused_before_sampling(server, sdxl_checkpoint, node):
    # Playground v2.5: ComfyUI loads it as SDXL with EDM sampling; the core node gives the same model_sampling
    edm = ("ModelSamplingContinuousEDM", {"sampling": "edm_playground_v2.5", "sigma_max": 120.0, "sigma_min": 0.002})
    p = sdxl_drag(sdxl_checkpoint, "sdxl_edm")
    p["ms"] = {"class_type": edm[0], "inputs": {"model": ["ckpt", 0], **edm[1]}}
    p[node]["inputs"]["model"] = ["ms", 0]
    code, body = server.queue(p)
    assert code == 200
    entry = server.wait(body["prompt_id"])
    msg = error_of(entry)
    assert entry["status"]["status_str"] == "error" and msg.startswith(p[node]["class_type"]), msg
    assert "the SDXL model samples with ModelSamplingContinuousEDM and EDM prediction" in msg, msg
    assert "supported: SD1.x, SD2.x and SDXL" in msg
