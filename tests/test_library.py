"""ComfyUI used as a library: the nodes called in process by a script, with no PromptServer."""
import inprocess

SCRIPT = r"""
from dragnoise_pack.nodes import (DragNoiseInversion, DragNoiseOptimize, DragNoisePoints, DragNoisePropagation,
                                  DragNoiseToyModelLoader, DragNoiseToyScene)
import nodes  # ComfyUI's own, for the sampler a script would use
import torch
# as ComfyUI's executor runs every node (the loaders' weights are inference tensors)
with torch.inference_mode():
    model, vae, positive = DragNoiseToyModelLoader.execute().result
    image = DragNoiseToyScene.execute(11, 128).result[0]
    latent = {"samples": vae.encode(image)}
    before = {k: v.clone() for k, v in model.model.diffusion_model.state_dict().items()}
    inverted, inversion, steps, start = DragNoiseInversion.execute(model, positive, latent, 10, 6).result
    points = DragNoisePoints.execute('[{"handle": [40, 64], "target": [56, 64]}]').result[0]
    # trail_every and preview_every on: with no server they must cost nothing and send nothing
    bottleneck = DragNoiseOptimize.execute(model, positive, inversion, points, 3, 0.07, 0.1, 1, 3,
                                           trail_every=1, preview_every=1).result[0]
    patched = DragNoisePropagation.execute(model, bottleneck, 0).result[0]
    out = nodes.common_ksampler(patched, 0, steps, 1.0, "ddim", "ddim_uniform", positive, positive, inverted,
                                disable_noise=True, start_step=start, last_step=steps, force_full_denoise=True)[0]
    # the same inverted latent through the same sampler with the user's unpatched MODEL
    plain = nodes.common_ksampler(model, 0, steps, 1.0, "ddim", "ddim_uniform", positive, positive, inverted,
                                  disable_noise=True, start_step=start, last_step=steps, force_full_denoise=True)[0]
after = model.model.diffusion_model.state_dict()
print(json.dumps({
    "server_loaded": "server" in sys.modules,
    "iterations": bottleneck["iterations"], "bottleneck": list(bottleneck["bottleneck"].shape),
    "patched_is_clone": patched is not model,
    "model_unchanged": all(before[k].equal(after[k]) for k in before),
    "sampled": list(out["samples"].shape), "finite": bool(out["samples"].isfinite().all()),
    "patch_effect": float((out["samples"] - plain["samples"]).abs().mean()),
    "plain_scale": float(plain["samples"].abs().mean()),
}))
"""


def test_the_four_nodes_run_in_process_without_a_server():
    r = inprocess.run(SCRIPT)
    assert r["server_loaded"] is False  # nothing imported ComfyUI's server.py
    assert r["iterations"] == 3
    assert len(r["bottleneck"]) == 4
    assert r["patched_is_clone"] and r["model_unchanged"]
    assert r["sampled"][-2:] == [16, 16] and r["finite"]
    # the propagation patch changed what the sampler made of the inverted latent: a patch that does
    # nothing (or is lost on the clone) gives the unpatched output exactly
    print(f"patched vs unpatched output: mean |difference| {r['patch_effect']:.4f} (mean |latent| {r['plain_scale']:.3f})")
    assert r["patch_effect"] > 0.01 * r["plain_scale"], r
