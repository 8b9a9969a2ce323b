"""Benchmark helpers: drag-accuracy metrics on hand-made cases, and the quick benchmark run."""
import json
import math

import pytest
import torch

from bench.metrics import centroid, color_mask, psnr, score_drag, summarize


def disc(h, w, cx, cy, r):
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return (((xs - cx) ** 2 + (ys - cy) ** 2) <= r * r).float()


def picture(mask, noise_seed=None, noise=0.0):
    """Grey background, red shape; optional background noise (the outside content)."""
    img = torch.full((mask.shape[0], mask.shape[1], 3), 0.5)
    if noise_seed is not None:
        img += noise * torch.randn(img.shape, generator=torch.Generator().manual_seed(noise_seed))
    m = mask[..., None]
    return img * (1 - m) + torch.tensor([1.0, 0.0, 0.0]) * m


def test_centroid_of_a_disc_is_its_centre():
    cx, cy = centroid(disc(64, 80, 30, 20, 8))
    assert cx == pytest.approx(30, abs=1e-6) and cy == pytest.approx(20, abs=1e-6)


def test_disc_moved_exactly_by_the_drag_scores_zero_error():
    before, after = disc(64, 64, 20, 32, 8), disc(64, 64, 30, 32, 8)
    img0, img1 = picture(before, 1, 0.05), picture(after, 1, 0.05)  # same background outside
    s = score_drag(color_mask(img0, (1, 0, 0)), color_mask(img1, (1, 0, 0)), (10, 0), img0, img1)
    assert s.shift == pytest.approx((10.0, 0.0), abs=1e-6)
    assert s.error == pytest.approx(0.0, abs=1e-6) and s.drag_length == 10 and s.success
    assert math.isinf(s.psnr_outside)  # nothing outside the shape changed


def test_partial_and_failed_drags():
    before = disc(64, 64, 20, 32, 8)
    # moved 8 of 10 px: error 2 <= 10/4, a success; moved 5 px: error 5, a failure
    near = score_drag(before, disc(64, 64, 28, 32, 8), (10, 0))
    short = score_drag(before, disc(64, 64, 25, 32, 8), (10, 0))
    sideways = score_drag(before, disc(64, 64, 20, 42, 8), (10, 0))  # moved down instead of right
    assert near.error == pytest.approx(2.0) and near.success
    assert short.error == pytest.approx(5.0) and not short.success
    assert sideways.error == pytest.approx(math.hypot(10, 10)) and not sideways.success
    summary = summarize([near, short, sideways])
    assert summary["cases"] == 3 and summary["success_rate"] == pytest.approx(1 / 3)
    assert summary["mean_error"] == pytest.approx((2 + 5 + math.hypot(10, 10)) / 3)


def test_psnr_counts_only_the_outside_of_the_shape():
    before, after = disc(32, 32, 10, 16, 5), disc(32, 32, 20, 16, 5)
    img0, img1 = picture(before), picture(after)
    img1[0, 0] += 0.1  # one outside pixel (all 3 channels) changed by 0.1
    s = score_drag(before, after, (10, 0), img0, img1)
    outside = int((1 - torch.maximum(before, after)).sum())
    assert s.psnr_outside == pytest.approx(10 * math.log10(outside / 0.01), rel=1e-6)
    assert psnr(img0, img0) == math.inf
    with pytest.raises(ValueError, match="empty mask"):
        centroid(torch.zeros(4, 4))


def test_quick_benchmark_runs_and_prints_the_table(comfy_cpu, tmp_path, capsys):
    from bench import run
    out = tmp_path / "quick.json"
    report = run.main(["--quick", "--device", "cpu", "--json", str(out)])
    text = capsys.readouterr().out
    assert "| size | UNet fwd |" in text and "| 64 px |" in text and "DragDiff / DragNoise" in text
    saved = json.loads(out.read_text())
    assert saved["layout"] == "shallow" and saved["results"][0]["size"] == 64
    r = report["results"][0]
    for key in ("unet_forward_s", "inversion_s", "dragnoise_iter_s", "dragnoise_upsample_iter_s",
                "dragdiffusion_iter_s", "propagation_s"):
        assert r[key] > 0 and math.isfinite(r[key]), key
    assert r["speedup"] == pytest.approx(r["dragdiffusion_iter_s"] / r["dragnoise_iter_s"])


def test_sdxl_benchmark_runs_on_the_sdxl_model_class(comfy_cpu, tmp_path, capsys):
    # the reduced (Segmind-Vega-layout) SDXL at 64 px: the code path of the full-architecture run
    from bench import run
    out = tmp_path / "sdxl.json"
    report = run.main(["--model", "sdxl", "--sdxl-layout", "vega", "--sizes", "64", "--iterations", "2",
                       "--sample-steps", "1", "--repeats", "1", "--device", "cpu", "--json", str(out)])
    text = capsys.readouterr().out
    assert "DragNoise SDXL benchmark: vega architecture" in text and "| 64 px |" in text
    r = json.loads(out.read_text())["results"][0]
    for key in ("unet_forward_s", "inversion_s", "dragnoise_iter_s", "propagation_s", "edit_peak_total_mb"):
        assert r[key] > 0 and math.isfinite(r[key]), key
    assert r["edit_peak_total_mb"] >= r["weights_mb"] > 300  # 107M fp32 parameters
    assert report["unet_params"] > 1e8


def test_sdxl_flop_and_memory_count_on_the_meta_device(comfy_cpu):
    from bench import sdxl
    r = sdxl.count("vega", 256)
    assert 0 < r["forward_tflop"] < r["iteration_tflop"] * 3  # the replay is a part of the UNet, plus backward
    assert 0.2 < r["iteration_fwd"] < 2.0
    assert 0 < r["replayed_weight_copies_gib"] < r["weights_gib"] and r["saved_activations_gib"] > 0


def test_sdxl_whole_edit_adds_the_upsampled_feature_unless_low_memory():
    from bench import sdxl
    from dragnoise.memory import GIB
    counts = {"weights_gib": 4.8, "replayed_weight_copies_gib": 1.5, "saved_activations_gib": 3.0,
              "upsampled_feature_gib": 0.8}
    assert sdxl.whole_edit_bytes(counts, low_memory=True) == int(9.3 * GIB)
    assert sdxl.whole_edit_bytes(counts) == int(10.1 * GIB)


def test_redrag_benchmark_runs_through_the_executor(tmp_path):
    """bench/redrag.py (issue 24's GPU script) on the CPU, tiny: the pack in ComfyUI's PromptExecutor, the
    first drag, re-drags with new points on the cached inversion, eager and 'graph' (eager here: no CUDA),
    and the engine check that both loops give one result. A subprocess: the executor imports ComfyUI's
    nodes.py, whose name this repository's nodes/ package shares."""
    import os
    import subprocess
    import sys
    from conftest import COMFY, ROOT
    out = tmp_path / "redrag.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "redrag.py"), "--device", "cpu", "--layout", "shallow",
                          "--size", "64", "--steps", "6", "--inversion-steps", "4", "--iterations", "3",
                          "--redrags", "1", "--json", str(out)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, COMFYUI_PATH=str(COMFY), PYTHONPATH=""))
    assert run.returncode == 0, run.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["size"] == 64 and r["iterations"] == 3
    for key in ("first_drag_seconds", "redrag_seconds", "eager_redrag_seconds", "graph_redrag_seconds",
                "propagation_and_decode_seconds"):
        assert r[key] > 0 and math.isfinite(r[key]), key
    e = r["engine"]
    assert e["captured"] is False  # no CUDA: the captured loop ran without a graph
    assert e["same_handles"] and e["bottleneck_max_diff"] == 0.0 and e["bottleneck_change"] > 0
    assert "| **re-drag, whole prompt** |" in r["table"]
