"""The toy model (dragnoise_toy): committed weights load the way the loader node loads them, and a drag
through the real server with the toy loader moves the shape toward its target."""
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import graphs
from dragnoise_toy.model import DEMO_POINTS as POINTS, DEMO_SCENE as SCENE, SIZE as TOY_SIZE

ROOT = Path(__file__).resolve().parents[1]
# SCENE: one yellow disc (r 21 px at 128 px, scaled with the toy's size), POINTS drag it right


def toy_drag_prompt(points, steps=50, inversion_steps=None, iterations=None, prefix="toy", scene=SCENE) -> dict:
    """graphs.drag_prompt's graph with the toy loader and a toy scene instead of the SD loaders, at the
    toy demo's settings (dragnoise_toy.model.DEMO_*)."""
    from dragnoise_toy import model as M
    return graphs.drag_prompt(points, steps, inversion_steps or M.DEMO_INVERSION_STEPS,
                              iterations or M.DEMO_ITERATIONS, prefix=prefix, sources=graphs.toy_sources(scene, TOY_SIZE),
                              lr=M.DEMO_LR, r1=M.DEMO_R1)


def test_toy_weights_are_small_and_load(comfy_cpu):
    import torch
    from dragnoise import feature_block_index
    from dragnoise_toy import model as M
    files = [M.WEIGHTS / f for f in (M.UNET_FILE, M.ENCODER_FILE, M.DECODER_FILE)]
    assert sum(f.stat().st_size for f in files) <= 20 * 2 ** 20
    patcher = M.load_unet_patcher()
    unet = patcher.model.diffusion_model
    assert type(patcher.model.latent_format).__name__ == "SD15"
    assert feature_block_index(unet) < len(unet.output_blocks) - 1 and unet.middle_block is not None
    ac = 1 / (1 + patcher.model.model_sampling.sigmas.double() ** 2)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    assert torch.allclose(ac.double(), torch.cumprod(1 - betas, 0), atol=1e-5)  # SD1.5 schedule
    vae = M.load_vae()
    from dragnoise_toy.data import random_scene
    img = torch.from_numpy(random_scene(np.random.default_rng(SCENE), TOY_SIZE).render())[None]
    with torch.inference_mode():  # as ComfyUI runs VAE Encode / Decode
        rec = vae.decode(vae.encode(img))
    assert float((rec.reshape(img.shape) - img).abs().mean()) < 0.06


def test_toy_feature_is_drawn_from_the_bottleneck_alone(comfy_cpu):
    """The shipped toy's decoder gets no encoder skips up to the drag feature (its NoFeatureSkips
    patch, part of the MODEL the loader returns): two different x_t with the same bottleneck give
    the same feature, in the recording forward and in the engine's replay."""
    import torch
    from dragnoise import DecoderReplay
    from dragnoise_toy import model as M
    patcher = M.load_unet_patcher()
    patches = patcher.model_options["transformer_options"]["patches"]["output_block_patch"]
    assert M.toy_settings().get("feature_skips") is False and any(isinstance(p, M.NoFeatureSkips) for p in patches)
    unet = patcher.model.diffusion_model
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(1, 4, 16, 16, generator=g), torch.randn(1, 4, 16, 16, generator=g)
    t, ctx = torch.tensor([680.0]), M.constant_context()
    replays = []
    for x in (x1, x2):
        r = DecoderReplay(unet)
        opts = r.recording_options({"patches": {"output_block_patch": list(patches)}}, ctx, None)
        with torch.inference_mode():
            unet(x, t, ctx, transformer_options=opts)
        replays.append(r)
    b = replays[0].bottleneck
    with torch.inference_mode(False), torch.no_grad():
        f1, f2 = replays[0].decode(b.clone()), replays[1].decode(b.clone())
    assert torch.allclose(f1, replays[0].feature, atol=1e-5)  # replay == recording, patch applied in both
    assert torch.allclose(f1, f2, atol=1e-5)  # the x_t the skips came from does not matter
    assert not torch.allclose(replays[0].feature, replays[1].feature, atol=1e-3)  # the bottleneck does
    without = DecoderReplay(unet)  # and without the patch the skips do change it (the test can fail)
    with torch.inference_mode():
        unet(x2, t, ctx, transformer_options=without.recording_options({}, ctx, None))
    with torch.inference_mode(False), torch.no_grad():
        assert not torch.allclose(without.decode(b.clone()), f1, atol=1e-3)


def test_toy_drag_moves_the_shape_through_the_server(server):
    from PIL import Image
    from bench.metrics import score_drag
    from dragnoise_toy.data import random_scene, shape_mask
    scene = random_scene(np.random.default_rng(SCENE), TOY_SIZE)
    before = scene.render()
    entry = server.run(toy_drag_prompt(POINTS), timeout=600)
    after = np.asarray(Image.open(io.BytesIO(server.image(entry, "save"))).convert("RGB"), np.float32) / 255
    drag = [POINTS[0]["target"][i] - POINTS[0]["handle"][i] for i in (0, 1)]
    m_before, m_after = shape_mask(before, scene, 0), shape_mask(after, scene, 0)
    assert m_after.sum() > 0.5 * m_before.sum(), "the disc is gone"
    s = score_drag(m_before, m_after, drag, before, after)
    assert s.psnr_outside > 20, f"the rest of the image changed: PSNR outside the disc {s.psnr_outside:.1f} dB"
    length = math.hypot(*drag)
    print(f"toy demo disc: shift ({s.shift[0]:.1f}, {s.shift[1]:.1f}) px for a drag of {drag}, centroid error "
          f"{s.error:.1f} px, PSNR outside {s.psnr_outside:.1f} dB")
    # The issue's goal for the demo: the disc goes past halfway along the drag without drifting
    # sideways (stage 8 at 256 px: 38.5 of 52 px, centroid error 13.8 px; at 128 px stage 7 moved it
    # 22.7 of 26 px, error 3.8 px, and the models and settings before 1.2, 4.7, 9.7 and 18.0 px).
    # The reconstruction alone does not move it.
    assert s.shift[0] > 0.5 * drag[0] and abs(s.shift[1]) < 0.2 * length and s.error < 0.5 * length, \
        f"the disc moved by ({s.shift[0]:.1f}, {s.shift[1]:.1f}) px for a drag of {drag} (centroid error {s.error:.1f} px)"


def test_drag_cases_are_seeded_and_know_their_ground_truth():
    from dragnoise_toy.data import drag_cases, shape_mask
    from bench.metrics import centroid
    a, b = drag_cases(60, seed=0), drag_cases(60, seed=0)
    assert [c.pairs for c in a] == [c.pairs for c in b] and len(a) == 60
    kinds = {c.name.split("_", 1)[1].replace("_mask", "") for c in a}
    assert kinds == {"single", "two_shapes", "two_points"}
    assert sum(c.mask is not None for c in a) >= 15 and sum(len(c.pairs) > 1 for c in a) >= 15
    for c in a[:8]:
        before, after = c.scene.render(), c.expected().render()
        for i, d in zip(c.moved, c.drags):
            (x0, y0), (x1, y1) = centroid(shape_mask(before, c.scene, i)), centroid(shape_mask(after, c.scene, i))
            assert abs(x1 - x0 - d[0]) < 0.5 and abs(y1 - y0 - d[1]) < 0.5
            h = c.pairs[c.moved.index(i) * (len(c.pairs) // len(c.moved))]["handle"]
            assert shape_mask(before, c.scene, i)[h[1], h[0]] == 1  # the handle is on the shape


def test_accuracy_bench_quick(comfy_cpu, tmp_path):
    import subprocess
    import sys
    out = tmp_path / "acc.json"
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "accuracy.py"), "--cases", "2", "--steps", "4",
                        "--inversion-steps", "3", "--iterations", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["summary"]) == {"reconstruction", "dragnoise", "dragdiffusion", "oracle"}
    assert set(report["diagnostics"]) == {"oracle_feature_ratio", "oracle_feature_cos", "oracle_x0_ratio",
                                          "oracle_x0_cos", "dn_oracle_cos", "oracle_b_change", "dn_b_change"}
    assert report["summary"]["dragnoise"]["cases"] == 2 and "| dragnoise |" in r.stdout


def box_mask(box, size) -> dict:
    """A painted box (1 = may change) made with ComfyUI's own mask nodes, as a drag_prompt mask."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    return {"canvas": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": size, "height": size}},
            "box": {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": x1 - x0, "height": y1 - y0}},
            "editable": {"class_type": "MaskComposite", "inputs": {
                "destination": ["canvas", 0], "source": ["box", 0], "x": x0, "y": y0, "operation": "add"}}}


@pytest.mark.parametrize("region", ["mask", "band"])
def test_toy_drag_with_a_mask_keeps_the_rest_of_the_image(server, region):
    """With a painted mask the Propagation Patch keeps the image outside it: there the output is the
    input's own VAE reconstruction (the latent is the encoded input's, exactly), while the disc inside
    still moves. The official behaviour (keep_outside_mask off) re-synthesizes the rest: the same
    comparison fails there, so the test can fail. region "band": nothing painted, Optimize's `band`
    makes the editable region from the points (48 px around the handle -> target path)."""
    from PIL import Image
    from bench.metrics import psnr, score_drag
    from dragnoise_toy.data import DragCase, random_scene, shape_mask
    scene = random_scene(np.random.default_rng(SCENE), TOY_SIZE)
    drag = [POINTS[0]["target"][i] - POINTS[0]["handle"][i] for i in (0, 1)]
    box = DragCase("demo", scene, POINTS, [0], [drag], None).path_box()
    # the 1-px feathered ring (one latent cell = 8 px) and the VAE decoder's reach: 16 px more
    outside = np.ones((TOY_SIZE, TOY_SIZE), np.float32)
    p = toy_drag_prompt(POINTS, prefix="keep", iterations=60)
    if region == "mask":
        outside[max(int(box[1]) - 16, 0):int(box[3]) + 16, max(int(box[0]) - 16, 0):int(box[2]) + 16] = 0
        p.update(box_mask(box, TOY_SIZE))
        p["optimize"]["inputs"]["mask"] = ["editable", 0]
    else:
        from dragnoise import parse_points
        outside[parse_points(POINTS).band(TOY_SIZE, TOY_SIZE, 48 + 16)[0].numpy() > 0] = 0
        p["optimize"]["inputs"]["band"] = 48
    # the official behaviour from the same optimization, and the input's plain VAE round trip
    p["patch_off"] = {**p["patch"], "inputs": {**p["patch"]["inputs"], "keep_outside_mask": False}}
    p["sample_off"] = {**p["sample"], "inputs": {**p["sample"]["inputs"], "model": ["patch_off", 0]}}
    p["decode_off"] = {**p["decode"], "inputs": {**p["decode"]["inputs"], "samples": ["sample_off", 0]}}
    p["save_off"] = {**p["save"], "inputs": {"images": ["decode_off", 0], "filename_prefix": "keep_off"}}
    p["decode_rec"] = {**p["decode"], "inputs": {**p["decode"]["inputs"], "samples": ["encode", 0]}}
    p["save_rec"] = {**p["save"], "inputs": {"images": ["decode_rec", 0], "filename_prefix": "keep_rec"}}
    entry = server.run(p, timeout=600)
    load = lambda node: np.asarray(Image.open(io.BytesIO(server.image(entry, node))).convert("RGB"), np.float32) / 255  # noqa: E731
    kept, off, rec = load("save"), load("save_off"), load("save_rec")
    p_kept, p_off = psnr(rec, kept, outside), psnr(rec, off, outside)
    print(f"outside the mask, against the input's VAE reconstruction: kept {p_kept:.1f} dB, official {p_off:.1f} dB")
    assert p_kept > 45, f"keeping changed the rest of the image: {p_kept:.1f} dB against the reconstruction"
    assert p_off < p_kept - 10, f"without keeping the rest is as close ({p_off:.1f} dB): the test proves nothing"
    before = scene.render()
    s = score_drag(shape_mask(before, scene, 0), shape_mask(kept, scene, 0), drag, before, kept)
    # 60 iterations (the demo's 150 move it 38 of 52 px; the demo test checks that): it still moves right
    assert s.shift[0] > 0.15 * drag[0], f"with keeping the disc moved only {s.shift[0]:.1f} of {drag[0]} px"
