"""Model families the method cannot serve are refused before any sampling, naming the family; the
SD1.x inpainting family (9 input channels) is served.

These build ComfyUI's own model classes with reduced configs (the real ones are several GB) and hand
them, wrapped in a ModelPatcher as the loaders do, to the check every DragNoise node runs first. The
refusals reachable with small files (SD3 DiT, EDM SDXL) are tested through the server in
test_reliability.py and test_sdxl.py.
"""
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bridge(comfy_cpu):
    """The pack's nodes/bridge.py, imported as ComfyUI imports the pack (a package, after comfy)."""
    if "dragnoise_pack" not in sys.modules:
        spec = importlib.util.spec_from_file_location("dragnoise_pack", ROOT / "__init__.py",
                                                      submodule_search_locations=[str(ROOT)])
        pack = importlib.util.module_from_spec(spec)
        sys.modules["dragnoise_pack"] = pack
        spec.loader.exec_module(pack)
    return importlib.import_module("dragnoise_pack.nodes.bridge")


def patcher(model_config):
    import comfy.model_patcher
    import comfy.ops
    model_config.custom_operations = comfy.ops.disable_weight_init
    with torch.inference_mode():
        model = model_config.get_model({})
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def small_unet(**over):
    import tiny_sdxl
    layout = dict(num_res_blocks=[1, 1, 1, 1], channel_mult=[1, 1, 1, 1], transformer_depth=[0, 1, 1, 0],
                  transformer_depth_output=[0, 0, 1, 1, 1, 1, 0, 0], transformer_depth_middle=1)
    return tiny_sdxl.unet_config(layout, **{"model_channels": 32, "num_head_channels": 16, **over})


def test_sdxl_refiner_is_refused(bridge):
    import comfy.model_base
    import comfy.supported_models
    m = patcher(comfy.supported_models.SDXLRefiner(small_unet(context_dim=64, adm_in_channels=64 + 1024)))
    assert isinstance(m.model, comfy.model_base.SDXLRefiner)
    with pytest.raises(ValueError, match="the SDXL refiner is not supported: it is trained for the last") as e:
        bridge.require_unet(m)
    assert "use the SDXL base model" in str(e.value)


def test_stable_cascade_is_refused(bridge):
    import comfy.supported_models
    cfg = dict(stable_cascade_stage="c", c_in=16, c_out=16, c_r=16, c_cond=32, c_hidden=[32, 32], nhead=[2, 2],
               blocks=[[1, 1], [1, 1]], c_clip_text=32, c_clip_text_pooled=32, c_clip_img=32)
    m = patcher(comfy.supported_models.Stable_Cascade_C(cfg))
    with pytest.raises(ValueError, match="the StableCascade_C model is not supported: StageC has no UNet"):
        bridge.require_unet(m)


@pytest.mark.parametrize("model_type, words", [
    ("V_PREDICTION_EDM", "ModelSamplingContinuousEDM and V_PREDICTION prediction"),  # e.g. SDXL edm_vpred
    ("IMG_TO_IMG", "ModelSamplingDiscrete and IMG_TO_IMG prediction"),
    ("FLOW", "ModelSamplingDiscreteFlow and CONST prediction"),
])
def test_other_parameterizations_are_refused(bridge, model_type, words):
    # the model_sampling ComfyUI builds for each model type, object-patched in as ModelSampling* nodes do
    import comfy.model_base
    import comfy.supported_models
    mc = comfy.supported_models.SDXL(small_unet(context_dim=64, adm_in_channels=64 + 1536))
    m = patcher(mc)
    bridge.require_unet(m)  # the plain SDXL model class passes, and so do v-prediction and zsnr
    for ok in ("EPS", "V_PREDICTION"):
        for zsnr in (False, True):
            mc.sampling_settings["zsnr"] = zsnr
            v = m.clone()
            v.add_object_patch("model_sampling", comfy.model_base.model_sampling(mc, comfy.model_base.ModelType[ok]))
            bridge.require_unet(v)
    bad = m.clone()
    bad.add_object_patch("model_sampling", comfy.model_base.model_sampling(mc, comfy.model_base.ModelType[model_type]))
    with pytest.raises(ValueError, match=f"the SDXL model samples with {words}"):
        bridge.require_unet(bad)


def test_sd15_inpainting_model_drags_end_to_end(server, models_dir):
    # 9 input channels (latent + mask + masked image): ComfyUI loads it as SD15 with set_inpaint() and,
    # with no inpaint conditioning, feeds an all-ones mask and a blank masked image; the drag only
    # touches the decoder, so it runs unchanged
    import graphs
    import safetensors.torch
    import tiny_sd15
    name = "dragnoise_tiny_sd15_inpaint.safetensors"
    path = Path(models_dir) / "diffusion_models" / name
    if not path.exists():
        safetensors.torch.save_file(tiny_sd15.unet_state_dict(seed=1, in_channels=9), str(path))
    from test_server import assert_drag_changed
    p = graphs.with_unpatched(graphs.drag_prompt([{"handle": [45, 64], "target": [70, 64]}], prefix="inpaint",
                                                 steps=6, inversion_steps=4, iterations=2))
    p["unet"]["inputs"]["unet_name"] = name
    entry = server.run(p)
    assert_drag_changed(server, entry)
