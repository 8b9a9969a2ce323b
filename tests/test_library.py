"""ComfyUI used as a library: the nodes called in process by a script, with no PromptServer."""
import json
import os
import subprocess
import sys

from conftest import COMFY, ROOT

# A fresh interpreter: pytest's own process may have loaded ComfyUI modules a server run needs.
SCRIPT = r"""
import importlib.util, json, sys
comfy_dir, pack = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy_dir)
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.cli_args, comfy.model_management  # noqa: F401  (the devices, as a script sets them up)
spec = importlib.util.spec_from_file_location("dragnoise_pack", pack + "/__init__.py", submodule_search_locations=[pack])
mod = importlib.util.module_from_spec(spec); sys.modules["dragnoise_pack"] = mod; spec.loader.exec_module(mod)
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
after = model.model.diffusion_model.state_dict()
print(json.dumps({
    "server_loaded": "server" in sys.modules,
    "iterations": bottleneck["iterations"], "bottleneck": list(bottleneck["bottleneck"].shape),
    "patched_is_clone": patched is not model,
    "model_unchanged": all(before[k].equal(after[k]) for k in before),
    "sampled": list(out["samples"].shape), "finite": bool(out["samples"].isfinite().all()),
    "moved": float((out["samples"] - inverted["samples"]).abs().mean()),
}))
"""


def test_the_four_nodes_run_in_process_without_a_server():
    env = dict(os.environ, PYTHONPATH="")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(COMFY), str(ROOT)], capture_output=True, text=True,
                         env=env, cwd=str(COMFY), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["server_loaded"] is False  # nothing imported ComfyUI's server.py
    assert r["iterations"] == 3
    assert len(r["bottleneck"]) == 4
    assert r["patched_is_clone"] and r["model_unchanged"]
    assert r["sampled"][-2:] == [16, 16] and r["finite"]
    assert r["moved"] > 0  # the patched model denoised the inverted latent
