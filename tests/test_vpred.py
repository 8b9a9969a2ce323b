"""v-prediction (and zero-terminal-SNR) models through the real server: the test UNet patched by the core
ModelSamplingDiscrete node, as users load v-prediction SD1.x/SD2.x/SDXL fine-tunes."""
import pytest
import safetensors.torch

import graphs

SCALE = 3.0  # the test image's latent at about unit variance in the model's space
TOLERANCE = 0.2  # the eps-prediction round trip's tolerance (test_engine), on the same random-weight UNet


def round_trip_prompt(sampling: str, zsnr: bool, prefix: str) -> dict:
    """Encode -> DragNoise inversion (14 of 20: the official 0.7 strength in fewer calls) -> KSampler
    (Advanced) ddim back to 0, no drag; the three latents saved with the core SaveLatent."""
    p = graphs.loaders()
    # 64 px (8x8 latent) keeps the 28 UNet calls cheap; the latent is scaled to about unit variance in the
    # model's space (SD1.5 scale 0.18215), like the engine test's x0, since the error of a random-weight
    # UNet's round trip is absolute and the relative tolerance needs the same footing
    p["small"] = {"class_type": "ImageScale", "inputs": {"image": ["image", 0], "upscale_method": "area",
                                                         "width": 64, "height": 64, "crop": "disabled"}}
    p["encode"]["inputs"]["pixels"] = ["small", 0]
    p["unit"] = {"class_type": "LatentMultiply", "inputs": {"samples": ["encode", 0], "multiplier": SCALE}}
    p["ms"] = {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["unet", 0], "sampling": sampling,
                                                                  "zsnr": zsnr}}
    p["invert"] = {"class_type": "DragNoiseInversion", "inputs": {
        "model": ["ms", 0], "positive": ["pos", 0], "latent": ["unit", 0], "steps": 20, "inversion_steps": 14}}
    p["sample"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["ms", 0], "add_noise": "disable", "noise_seed": 0, "steps": ["invert", 2], "cfg": 1.0,
        "sampler_name": "ddim", "scheduler": "ddim_uniform", "positive": ["pos", 0], "negative": ["pos", 0],
        "latent_image": ["invert", 0], "start_at_step": ["invert", 3], "end_at_step": 10000,
        "return_with_leftover_noise": "disable"}}
    for name, src in (("x0", "unit"), ("xt", "invert"), ("rec", "sample")):
        p[f"save_{name}"] = {"class_type": "SaveLatent", "inputs": {"samples": [src, 0],
                                                                    "filename_prefix": f"latents/{prefix}_{name}"}}
    return p


def saved_latent(server, entry, node):
    info = entry["outputs"][node]["latents"][0]
    path = server.base / "output" / info["subfolder"] / info["filename"]
    return safetensors.torch.load_file(str(path))["latent_tensor"]


@pytest.mark.parametrize("sampling, zsnr", [("eps", False), ("v_prediction", False), ("v_prediction", True)])
def test_inversion_then_ddim_reconstructs_the_latent(server, sampling, zsnr):
    entry = server.run(round_trip_prompt(sampling, zsnr, f"rt_{sampling}_{zsnr}"))
    x0, xt, rec = (saved_latent(server, entry, f"save_{n}") for n in ("x0", "xt", "rec"))
    rel = float((rec - x0).norm() / x0.norm())
    print(f"{sampling} zsnr={zsnr}: relative L2 of the round trip {rel:.4f}, "
          f"of the inverted latent {float((xt - x0).norm() / x0.norm()):.2f}")
    assert rel < TOLERANCE, f"{sampling} (zsnr {zsnr}): round trip off by {rel:.3f} (relative L2)"
    # the inverted latent is far from x0, so the round trip is doing the work
    assert float((xt - x0).norm() / x0.norm()) > 2 * TOLERANCE


def test_v_prediction_drag_runs_end_to_end(server):
    from test_server import assert_drag_changed
    p = graphs.drag_prompt([{"handle": [45, 64], "target": [70, 64]}], prefix="vpred_drag")
    p["ms"] = {"class_type": "ModelSamplingDiscrete", "inputs": {"model": ["unet", 0], "sampling": "v_prediction",
                                                                  "zsnr": False}}
    for node in ("invert", "optimize", "patch"):
        p[node]["inputs"]["model"] = ["ms", 0]
    entry = server.run(graphs.with_unpatched(p))  # (the unpatched sampling: the v-prediction MODEL too)
    assert_drag_changed(server, entry)
