"""The pack inside a real ComfyUI, driven through its HTTP API on 127.0.0.1."""
import io

import numpy as np
import pytest
from PIL import Image

import graphs
from comfy_server import error_of

NODES = ("DragNoiseInversion", "DragNoisePoints", "DragNoiseOptimize", "DragNoisePropagation")
DRAG = [{"handle": [45, 64], "target": [70, 64]}]
# mean |difference| (of 255) a drag must make against the unpatched sampling: a no-op patch gives 0, a
# float-rounding difference far less; the smallest drags here (test_reliability, 1-2 iterations) give ~0.1
LEAST_CHANGE = 0.02


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def assert_drag_changed(server, entry, at_least=LEAST_CHANGE):
    """The patched sampling's image differs from the same sampling unpatched (graphs.with_unpatched)."""
    dragged, plain = (pixels(server.image(entry, n)).astype(np.float32) for n in ("save", "save_plain"))
    change = float(np.abs(dragged - plain).mean())
    print(f"drag vs unpatched: mean |difference| {change:.2f} of 255")
    assert change > at_least, f"the drag changed the image by only {change:.3f} of 255 (mean) against the unpatched run"


def test_nodes_are_registered(server):
    info = server.get("/object_info")
    for name in NODES:
        assert name in info, f"{name} missing from /object_info:\n{server.log()[-3000:]}"
    opt = info["DragNoiseOptimize"]["input"]
    assert opt["required"]["iterations"][1]["default"] == 60
    assert opt["required"]["lr"][1]["default"] == 0.01
    assert "mask" in opt["optional"]
    assert info["DragNoiseInversion"]["input"]["required"]["inversion_steps"][1]["default"] == 35
    assert info["DragNoiseInversion"]["output"] == ["LATENT", "DRAGNOISE_INVERSION", "INT", "INT"]


def test_drag_end_to_end_and_original_model_untouched(server):
    before = pixels(server.image(server.run(graphs.plain_sample_prompt(False, "plain_before")), "save"))
    entry = server.run(graphs.drag_prompt(DRAG))
    dragged = pixels(server.image(entry, "save"))
    assert dragged.shape == (graphs.SIZE, graphs.SIZE, 3)
    # the user's MODEL samples bit-identically after a drag (the patch lives on a clone)
    after = pixels(server.image(server.run(graphs.plain_sample_prompt(True, "plain_after")), "save"))
    assert np.array_equal(before, after)
    # and the drag changed something: same graph with the patch removed differs
    p = graphs.drag_prompt(DRAG, prefix="nopatch")
    p["sample"]["inputs"]["model"] = ["unet", 0]
    undragged = pixels(server.image(server.run(p), "save"))
    assert not np.array_equal(dragged, undragged)


@pytest.mark.parametrize("points, words", [
    ("[{oops", "not valid JSON"),  # ("[]" passes this node so its image reaches the editor: test_reliability)
    ('[{"handle": [10, 10], "target": [10, 10]}]', "zero-length"),
])
def test_bad_points_are_refused_at_validation(server, points, words):
    code, body = server.queue(graphs.drag_prompt(points))
    assert code == 400
    errors = body["node_errors"]["points"]["errors"]
    assert any(words in (e["message"] + e.get("details", "")) for e in errors), errors


def test_points_outside_the_image_are_named_and_the_server_goes_on(server):
    code, body = server.queue(graphs.drag_prompt([{"handle": [45, 64], "target": [500, 64]}], prefix="outside"))
    assert code == 200
    entry = server.wait(body["prompt_id"])
    assert entry["status"]["status_str"] == "error"
    assert "outside the 128x128 image" in error_of(entry)
    server.run(graphs.drag_prompt(DRAG, prefix="after_error", iterations=2))


def test_mask_of_the_wrong_size_is_named(server):
    mask = {"wrongmask": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 64, "height": 64}}}
    code, body = server.queue(graphs.drag_prompt(DRAG, mask=mask, prefix="badmask"))
    assert code == 200
    entry = server.wait(body["prompt_id"])
    assert "mask is 64x64 but the image is 128x128" in error_of(entry)
    ok = {"goodmask": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 128, "height": 128}}}
    server.run(graphs.drag_prompt(DRAG, mask=ok, prefix="goodmask", iterations=2))


def executed_nodes(entry) -> set:
    """Node ids that really ran (not served from ComfyUI's cache) in a history entry."""
    cached = set()
    for kind, data in entry["status"]["messages"]:
        if kind == "execution_cached":
            cached |= set(data["nodes"])
    return set(entry["prompt"][2]) - cached


def test_redrag_with_new_points_reuses_the_inversion(server):
    server.run(graphs.drag_prompt(DRAG, prefix="cache1", iterations=2))
    entry = server.run(graphs.drag_prompt([{"handle": [40, 60], "target": [60, 70]}], prefix="cache2", iterations=2))
    ran = executed_nodes(entry)
    # the inversion (and the loaders, encode) came from the cache: no UNet call was spent on them
    assert "invert" not in ran and "encode" not in ran and "unet" not in ran
    assert {"points", "optimize", "patch", "sample"} <= ran


def test_lora_fitted_with_core_training_nodes_feeds_the_drag(server):
    entry = server.run(graphs.with_unpatched(graphs.lora_fit_prompt(DRAG, server.get("/object_info"), train_steps=2,
                                                                    batch=2, prefix="lora_fit", iterations=2)))
    assert {"train", "lora", "invert", "optimize"} <= executed_nodes(entry)
    assert pixels(server.image(entry, "save")).shape == (graphs.SIZE, graphs.SIZE, 3)
    assert_drag_changed(server, entry)


def test_sampler_not_starting_at_the_editing_step_is_named(server):
    p = graphs.drag_prompt(DRAG, prefix="wrong_start", iterations=2)
    p["sample"]["inputs"]["start_at_step"] = 0  # e.g. the widget left at its default instead of linked
    code, body = server.queue(p)
    assert code == 200
    entry = server.wait(body["prompt_id"])
    msg = error_of(entry)
    assert "not at the editing step" in msg and "start_at_step 3" in msg, msg
