"""Memory of the optimization, in process on the CPU: counted before it starts, refused when it cannot fit
(made-up free-memory figures), and released at once when a run is cancelled."""
import inprocess

SCRIPT = r"""
from dragnoise_pack.nodes import DragNoiseInversion, DragNoiseOptimize, DragNoisePoints, DragNoiseToyModelLoader, DragNoiseToyScene
import dragnoise_pack.nodes.optimize as node_module
import dragnoise_pack.nodes.bridge as bridge
from dragnoise_pack.dragnoise import DecoderReplay
from dragnoise_pack.dragnoise.memory import EditTooLarge
import torch
out = {}
with torch.inference_mode():
    model, vae, positive = DragNoiseToyModelLoader.execute().result
    image = DragNoiseToyScene.execute(11, 128).result[0]
    latent = {"samples": vae.encode(image)}
    unet = model.model.diffusion_model
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    inverted, inversion, steps, start = DragNoiseInversion.execute(model, positive, latent, 10, 6).result
    points = DragNoisePoints.execute('[{"handle": [40, 64], "target": [56, 64]}]').result[0]

    def optimize(**kw):
        return DragNoiseOptimize.execute(model, positive, inversion, points, 3, 0.07, 0.1, 1, 3, **kw).result[0]

    # the count the node makes, kept for the report
    counted = []
    count = bridge.optimization_bytes
    bridge.optimization_bytes = lambda *a, **k: counted.append(count(*a, **k)) or counted[-1]
    real_free = mm.get_free_memory

    def free(n):  # a made-up figure, in get_free_memory's two forms (attention asks for the pair)
        return lambda dev=None, torch_free_too=False: (n, n) if torch_free_too else n
    for low_memory in (False, True):
        mm.get_free_memory = free(1 << 20)  # 1 MiB free: cannot fit
        try:
            optimize(low_memory=low_memory)
            out[f"refused_{low_memory}"] = None
        except EditTooLarge as e:
            out[f"refused_{low_memory}"] = {"message": str(e), "estimate": e.estimate_bytes, "free": e.free_bytes}
    out["counts"] = counted[:2]
    out["weights_on_meta_after_count"] = any(p.device.type == "meta" for p in unet.parameters())
    mm.get_free_memory = free(64 << 30)  # plenty: the same edit runs
    out["iterations_when_it_fits"] = optimize()["iterations"]
    mm.get_free_memory = real_free

    def live_bytes():  # every tensor storage the process still references
        seen = {}
        for o in gc.get_objects():
            if isinstance(o, torch.Tensor) and not o.is_meta:
                st = o.untyped_storage()
                seen[st.data_ptr()] = st.nbytes()
        return sum(seen.values())

    # what autograd really saves for one replay of this model, against the count
    from dragnoise_pack.dragnoise.memory import saved_tensor_bytes
    def measure(replay, x0):
        b = replay.bottleneck.clone().requires_grad_(True)
        replay.options = {**replay.options, "optimized_attention_override": bridge._sdpa_attention}
        real = saved_tensor_bytes(lambda: replay.decode(b), skip=replay._weights.tensors)
        return real["activations"]
    out["real_activations"] = bridge.record_edit_step(model, positive, inversion["latent"], inversion["sigma"], measure)

    # Cancel mid-optimization: the flag ComfyUI's Cancel sets, raised at the next progress call
    run = node_module.optimize_bottleneck
    def cancelling(*a, **kw):
        live = a[6]
        def callback(step, total, info):
            if step == 1:
                mm.interrupt_current_processing(True)
            live(step, total, info)
        return run(*a[:6], callback, *a[7:], **kw)
    node_module.optimize_bottleneck = cancelling
    gc.collect()
    out["bytes_before"] = live_bytes()
    try:
        optimize()
        held = None
    except mm.InterruptProcessingException as e:
        held = e  # as ComfyUI's executor holds it while it reports the error
    mm.interrupt_current_processing(False)
    node_module.optimize_bottleneck = run
    out["cancelled"] = held is not None
    # no gc.collect(): what reference counting frees at once
    out["bytes_after"] = live_bytes()
    out["alive_after_cancel"] = sorted({type(o).__name__ for o in gc.get_objects() if isinstance(o, torch.optim.Adam)
                                        or isinstance(o, DecoderReplay) and (o.skips or o.h_in or o._weights)})
    out["traceback_lines"] = len(__import__("traceback").format_tb(held.__traceback__)) if held else 0
    # Cancel pressed before the optimization starts (during the count): it must reach ComfyUI as itself,
    # not be taken for a failed count (the count then ran on and the drag finished)
    mm.interrupt_current_processing(True)
    try:
        optimize()
        out["cancel_before_start"] = "finished"
    except mm.InterruptProcessingException:
        out["cancel_before_start"] = "cancelled"
    mm.interrupt_current_processing(False)
    # the count with the iterations replayed as a CUDA graph adds the graph's pool: one more iteration
    from dragnoise_pack.dragnoise.memory import optimization_bytes
    out["captured_count"] = bridge.record_edit_step(
        model, positive, inversion["latent"], inversion["sigma"], lambda replay, x0: None,
        check=lambda replay: out.__setitem__("pair", [optimization_bytes(
            replay, (64, 64), options={"optimized_attention_override": bridge._sdpa_attention}, captured=c)
            for c in (False, True)]))
    out["model_unchanged"] = all(before[k].equal(v) for k, v in unet.state_dict().items())
print(json.dumps(out))
"""


def test_memory_is_counted_refused_and_released():
    r = inprocess.run(SCRIPT)
    # refused before the optimization starts, with a named error giving both figures
    for low_memory in (False, True):
        refusal = r[f"refused_{low_memory}"]
        assert refusal is not None, f"low_memory={low_memory}: an edit that cannot fit was not refused"
        assert refusal["free"] == 1 << 20 and refusal["estimate"] > refusal["free"]
        assert "MiB" in refusal["message"] and "1.0 MiB is free" in refusal["message"], refusal["message"]
    full, low = r["counts"]
    assert full["total"] == refusal["estimate"] or low["total"] == refusal["estimate"]
    # low_memory leaves out the feature upsampled to the grid, and only that
    assert full["feature"] > 0 and low["feature"] == 0 and full["total"] - low["total"] == full["feature"]
    # the count on meta tensors agrees with what autograd really saves (toy model, CPU)
    assert abs(full["activations"] - r["real_activations"]) <= 0.25 * r["real_activations"], (full, r["real_activations"])
    # the count swapped meta tensors in and restored the weights; the edit runs where it fits
    assert not r["weights_on_meta_after_count"] and r["model_unchanged"]
    assert r["iterations_when_it_fits"] == 3
    # Cancel: while the exception is still held (ComfyUI reports it), nothing of the edit is alive
    assert r["cancelled"] and r["traceback_lines"] > 3
    assert r["alive_after_cancel"] == [], r["alive_after_cancel"]
    # the memory the process holds is back where it was before the cancelled run (within 1 MiB: small
    # bookkeeping such as the progress bar's last message; the edit itself holds ~10 MiB here)
    assert r["bytes_after"] - r["bytes_before"] < 1 << 20, (r["bytes_before"], r["bytes_after"])
    assert r["cancel_before_start"] == "cancelled"
    eager, captured = r["pair"]
    assert captured["graph"] == eager["activations"] + eager["feature"] > 0
    assert captured["total"] == eager["total"] + captured["graph"]
