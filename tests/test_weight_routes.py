"""The optimization under each way ComfyUI holds a model's weights, on the CPU (issue 28).

ComfyUI hands a layer its weight through its own code on every call: patched in place when the model is
fully loaded; through `weight_function`s (a LoRA applied on the fly) and a cast when it is partly loaded
(lowvram); from DynamicVRAM's copy in VRAM, made under inference mode, on 0.33's CUDA default. The replay
asks that code once per edit (nodes/bridge.host_weights) and computes from copies, so every route gives
the same gradients, and none is entered while autograd records. Run here: full load, ComfyUI's real
lowvram load, and a host cast that hands out an inference tensor (DynamicVRAM's failure mode on the CPU,
injected through the weight_function hook ComfyUI itself uses)."""
import inprocess

SCRIPT = r"""
import torch
sys.path.insert(0, pack + "/tests")
import tiny_sd15
import dragnoise_pack.nodes.bridge as bridge
from dragnoise_pack.dragnoise import DecoderReplay, DragConfig, optimize_bottleneck

PATCHED = ["diffusion_model.output_blocks.0.0.in_layers.2.weight",  # a convolution of the replayed blocks
           "diffusion_model.output_blocks.2.1.transformer_blocks.0.attn1.to_q.weight"]  # a linear one
sd = tiny_sd15.unet_state_dict(seed=0, dtype=torch.float32)


def patched_model():
    m = tiny_sd15.load_model(dict(sd))
    g = torch.Generator().manual_seed(9)
    with torch.inference_mode():
        diffs = {k: (0.2 * torch.randn(m.model.state_dict()[k].shape, generator=g),) for k in PATCHED}
    m.add_patches(diffs, 1.0)  # "diff" patches, as a LoRA's are applied
    return m


def state(unet):
    return {"weights": {k: v.clone() for k, v in unet.state_dict().items()},
            "layers": [(id(l), "forward" in l.__dict__, getattr(l, "comfy_cast_weights", None),
                        len(getattr(l, "weight_function", [])) if hasattr(l, "weight_function") else None)
                       for l in unet.modules()]}


def same_state(a, b):
    return a["layers"] == b["layers"] and all(torch.equal(a["weights"][k], b["weights"][k]) for k in a["weights"])


def drag(patcher, iterations=4):
    unet = patcher.model.diffusion_model
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(6))
    replay = DecoderReplay(unet, effective=bridge.host_weights)
    with torch.inference_mode():
        unet(x, torch.tensor([681.0]), ctx, transformer_options=replay.recording_options({}, ctx, None))
    before = state(unet)
    with torch.inference_mode(False), torch.enable_grad(), replay:
        b = replay.bottleneck.clone().requires_grad_(True)
        feature = replay.decode(b)
        feature.pow(2).mean().backward()
        r = optimize_bottleneck(replay.decode, replay.bottleneck, [(10.0, 14.0)], [(17.0, 14.0)],
                                DragConfig(iterations=iterations, lr=0.5, stop_distance=-1.0), grid=(32, 32))
    after = state(unet)
    return {"recorded": replay.feature.clone(), "replayed": feature.detach(), "grad": b.grad,
            "bottleneck": r.bottleneck, "untouched": same_state(before, after)}


def close(a, b):
    return all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5) for k in ("recorded", "replayed", "grad", "bottleneck"))


out = {}
full = patched_model()
full.patch_model(device_to=torch.device("cpu"))  # fully loaded: the patches written into the weights
ref = drag(full)
out["full_untouched"] = ref["untouched"]
out["full_replay_equals_forward"] = bool(torch.allclose(ref["replayed"], ref["recorded"], rtol=1e-5, atol=1e-6))
out["grad_norm"] = float(ref["grad"].norm())

low = patched_model()
low.load(torch.device("cpu"), lowvram_model_memory=1)  # ComfyUI's partial load: nothing fits
layer = low.model.diffusion_model.output_blocks[0][0].in_layers[2]
out["lowvram_route_taken"] = bool(layer.comfy_cast_weights) and len(layer.weight_function) > 0
lowvram = drag(low)
out["lowvram_equals_full"] = close(lowvram, ref)
out["lowvram_untouched"] = lowvram["untouched"]

# the host's cast hands out an inference tensor (DynamicVRAM's resident VRAM copy is one), counted
plain = tiny_sd15.load_model(dict(sd))
calls = []
def inference_copy(w):
    calls.append(1)
    with torch.inference_mode():
        return w * 1.0
conv = plain.model.diffusion_model.output_blocks[0][0].in_layers[2]
conv.weight_function = [inference_copy]
short, calls_short = drag(plain, iterations=2), len(calls)
calls.clear()
longer = drag(plain, iterations=6)
out["inference_cast_grad_finite"] = bool(short["grad"].isfinite().all()) and float(short["grad"].norm()) > 0
out["host_cast_calls"] = [calls_short, len(calls)]
out["inference_cast_untouched"] = short["untouched"] and longer["untouched"]
print(json.dumps(out))
"""


def test_every_weight_route_gives_the_same_gradients_and_leaves_the_model_untouched():
    r = inprocess.run(SCRIPT)
    assert r["full_replay_equals_forward"] and r["grad_norm"] > 0
    assert r["lowvram_route_taken"], "the lowvram load did not route the patched layer through weight_function"
    assert r["lowvram_equals_full"]
    # the cast that hands out an inference tensor: autograd never sees it, and it is asked once per edit
    # (record + copy), not once per iteration
    assert r["inference_cast_grad_finite"]
    assert r["host_cast_calls"] == [2, 2]
    assert r["full_untouched"] and r["lowvram_untouched"] and r["inference_cast_untouched"]
