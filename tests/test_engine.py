"""Engine tests on a shallow SD1.5-family UNet created as ComfyUI's loaders create it."""
import pytest
import torch
import torch.nn.functional as F

from dragnoise import (DecoderReplay, DragConfig, NotAUNetError, PropagationWindow, ddim_invert,
                       inversion_sigmas, optimize_bottleneck)
from dragnoise.optimize import alignment_loss, sample_patches, track_handles


@pytest.fixture(scope="module")
def setup(tiny_model):
    import comfy.samplers
    bm = tiny_model.model
    ms = bm.model_sampling
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(1))
    sched = [float(s) for s in comfy.samplers.calculate_sigmas(ms, "ddim_uniform", 50)]

    def denoise(x, s, to=None):
        return bm.apply_model(x, torch.full((x.shape[0],), s), c_crossattn=ctx, transformer_options=to or {})
    return bm, ms, ctx, sched, denoise


def record(bm, ms, ctx, x, sigma):
    """One UNet forward at sigma, recorded for replay (as the optimize node does inside a wrapper)."""
    replay = DecoderReplay(bm.diffusion_model)
    with torch.inference_mode():
        xin = x / (sigma ** 2 + 1) ** 0.5
        bm.diffusion_model(xin, ms.timestep(torch.tensor([sigma])), ctx,
                           transformer_options=replay.recording_options({}, ctx, None))
    return replay


def test_weights_are_inference_tensors(tiny_model):
    # the trap the optimizer must handle: ComfyUI's loaders create weights in inference mode
    assert next(tiny_model.model.diffusion_model.parameters()).is_inference()


def test_inversion_then_ddim_reconstructs(setup):
    bm, ms, ctx, sched, denoise = setup
    x0 = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        xt = ddim_invert(denoise, x0, inversion_sigmas(sched, 35, float(ms.sigma_min)))
        x = xt
        for i in range(15, 50):  # ComfyUI's ddim sampler: x_next = x0_hat + sigma_next * eps_hat
            d = denoise(x, sched[i])
            x = d + (x - d) / sched[i] * sched[i + 1]
    rel = ((x - x0).norm() / x0.norm()).item()
    # tolerance: 20% relative L2 on random weights (a trained SD1.5 does far better); the
    # inverted latent itself is far from x0, so the round trip is doing the work
    assert rel < 0.2
    assert ((xt - x0).norm() / x0.norm()).item() > 1.0


def test_replay_matches_the_recorded_forward(setup):
    bm, ms, ctx, sched, _ = setup
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3)) * sched[15]
    replay = record(bm, ms, ctx, x, sched[15])
    assert replay.index == 5  # 1 res block per level: upsamplers end output blocks 1, 3, 5
    with torch.inference_mode(False), torch.enable_grad():
        b = replay.bottleneck.clone().requires_grad_(True)
        f = replay.decode(b)
        torch.testing.assert_close(f, replay.feature.clone(), rtol=1e-5, atol=1e-5)
        f.abs().sum().backward()  # would raise "Inference tensors cannot be saved for backward"
    assert b.grad is not None and b.grad.abs().sum() > 0


def test_finish_completes_the_forward_from_the_feature(setup):
    """The x0 preview's path: output blocks after the feature layer + `out` give the UNet's own output."""
    bm, ms, ctx, sched, _ = setup
    sigma = sched[15]
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5)) * sigma
    replay = DecoderReplay(bm.diffusion_model)
    with torch.inference_mode():
        xin = x / (sigma ** 2 + 1) ** 0.5
        full = bm.diffusion_model(xin, ms.timestep(torch.tensor([sigma])), ctx,
                                  transformer_options=replay.recording_options({}, ctx, None))
    with torch.inference_mode(False), torch.enable_grad(), replay:
        b = replay.bottleneck.clone().requires_grad_(True)
        f = replay.decode(b)
        out = replay.finish(f)
    torch.testing.assert_close(out, full, rtol=1e-4, atol=1e-4)
    # a changed bottleneck changes the finished output (finish really reads the feature it is given)
    with torch.inference_mode(False), replay:
        other = replay.finish(replay.decode(replay.bottleneck * 1.5))
    assert (other - full).abs().max() > 1e-3


def test_optimization_lowers_loss_and_moves_handles(setup):
    bm, ms, ctx, sched, _ = setup
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(4)) * sched[15]
    replay = record(bm, ms, ctx, x, sched[15])
    handles, targets = [(20.0, 30.0), (40.0, 20.0)], [(30.0, 30.0), (40.0, 34.0)]
    with torch.inference_mode(False), torch.enable_grad():
        decode = lambda b: F.interpolate(replay.decode(b), size=(64, 64), mode="bilinear")  # noqa: E731
        r = optimize_bottleneck(decode, replay.bottleneck, handles, targets, DragConfig(iterations=30, lr=0.05))
    assert r.iterations == 30 and not r.reached
    assert min(r.losses[-5:]) < r.losses[0] * 0.95
    before = sum(((h[0] - t[0]) ** 2 + (h[1] - t[1]) ** 2) ** 0.5 for h, t in zip(handles, targets))
    after = sum(((h[0] - t[0]) ** 2 + (h[1] - t[1]) ** 2) ** 0.5 for h, t in zip(r.handles, targets))
    assert after < before
    assert not torch.equal(r.bottleneck, replay.bottleneck)


def test_mask_loss_keeps_the_outside():
    # decode = identity-ish feature of a 4x4 bottleneck; only the left half may change
    torch.manual_seed(0)
    b0 = torch.randn(1, 8, 4, 4)
    decode = lambda b: F.interpolate(b, size=(16, 16), mode="bilinear")  # noqa: E731
    keep = torch.zeros(1, 1, 4, 4)
    keep[..., 2:] = 1
    cfg = DragConfig(iterations=20, lr=0.05, lam=10.0)
    free = optimize_bottleneck(decode, b0, [(3.0, 8.0)], [(6.0, 8.0)], DragConfig(iterations=20, lr=0.05))
    held = optimize_bottleneck(decode, b0, [(3.0, 8.0)], [(6.0, 8.0)], cfg, outside_mask=keep)
    drift = lambda r: (r.bottleneck - b0)[..., 2:].abs().mean().item()  # noqa: E731
    assert drift(held) < 0.5 * drift(free)


def test_sampling_and_tracking_are_safe_at_the_border():
    feat = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    p = sample_patches(feat, torch.tensor([[0.0, 0.0], [5.0, 4.0]]), 1)
    assert p.shape == (2, 2, 9) and torch.isfinite(p).all()
    # corner patch repeats the border value instead of wrapping to the far side
    assert p[0, 0, 0] == feat[0, 0, 0, 0] and p[1, 0, -1] == feat[0, 0, 4, 5]
    moved = track_handles(feat, feat, torch.tensor([[5.0, 4.0]]), torch.tensor([[5.0, 4.0]]), 3)
    assert moved.tolist() == [[5.0, 4.0]]
    loss = alignment_loss(feat.requires_grad_(), torch.tensor([[5.0, 4.0]]), torch.tensor([[9.0, 9.0]]), 1)
    assert torch.isfinite(loss)


def test_tracking_follows_the_feature():
    f0 = torch.zeros(1, 3, 20, 20)
    f0[0, :, 10, 10] = 1.0
    f1 = torch.zeros(1, 3, 20, 20)
    f1[0, :, 12, 9] = 1.0  # the feature moved by (-1, +2) in (x, y)
    out = track_handles(f0, f1, torch.tensor([[10.0, 10.0]]), torch.tensor([[10.0, 10.0]]), 3)
    assert out.tolist() == [[9.0, 12.0]]


def test_propagation_changes_output_only_inside_the_window(setup):
    bm, ms, ctx, sched, denoise = setup
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5)) * sched[15]
    replay = record(bm, ms, ctx, x, sched[15])
    window = PropagationWindow(replay.bottleneck.clone() + 1.0, sched[15], sched[40])
    to = window.transformer_options()
    with torch.inference_mode():
        for i, should_change in ((14, False), (15, True), (30, True), (40, True), (41, False), (49, False)):
            s = sched[i]
            plain = denoise(x, s)
            patched = denoise(x, s, {**to, "sigmas": torch.tensor([s])})
            assert (not torch.equal(plain, patched)) == should_change, i


def test_rejects_models_without_a_bottleneck():
    class DiT(torch.nn.Module):
        pass
    with pytest.raises(NotAUNetError, match="no UNet middle block"):
        DecoderReplay(DiT())


def test_controlnet_middle_residual_is_added_on_top_of_the_injected_bottleneck(setup):
    bm, ms, ctx, sched, denoise = setup
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(6)) * sched[15]
    replay = record(bm, ms, ctx, x, sched[15])
    b = replay.bottleneck.clone()
    residual = torch.randn(b.shape, generator=torch.Generator().manual_seed(7)) * 0.5

    def patched(bottleneck, control):
        w = PropagationWindow(bottleneck, sched[15], sched[40])
        to = w.transformer_options(sigmas=torch.tensor([sched[20]]))
        s = torch.full((1,), sched[20])
        return bm.apply_model(x, s, c_crossattn=ctx, control=control, transformer_options=to)
    with torch.inference_mode():
        with_control = patched(b + 1.0, {"middle": [residual], "input": [], "output": []})
        folded_in = patched(b + 1.0 + residual, None)
    torch.testing.assert_close(with_control, folded_in)


def test_sampling_on_the_grid_matches_upsampling_the_feature():
    # the official code upsamples the feature to the supervision grid every step; we sample the
    # small feature at the matching source coordinates instead
    torch.manual_seed(0)
    feat = torch.randn(1, 6, 8, 10)
    grid = (32, 40)
    up = F.interpolate(feat, size=grid, mode="bilinear")
    whole = torch.tensor([[0.0, 0.0], [13.0, 7.0], [39.0, 31.0], [21.0, 30.0]])
    torch.testing.assert_close(sample_patches(feat, whole, 2, grid), sample_patches(up, whole, 2), rtol=1e-5, atol=1e-5)
    # a unit step lands between cells: there we take the feature's own bilinear value, the official
    # code a bilinear value of the upsampled map; they agree inside a feature cell, not across one
    between = whole[1:2] + torch.tensor([[0.6, -0.3]])
    diff = (sample_patches(feat, between, 1, grid) - sample_patches(up, between, 1)).abs()
    assert (diff < 1e-5).float().mean() > 0.3 and diff.mean() < 0.1 * feat.std()
    init, cur = torch.tensor([[13.0, 7.0], [39.0, 31.0]]), torch.tensor([[15.0, 9.0], [37.0, 30.0]])
    shifted = torch.roll(feat, shifts=(1, 1), dims=(2, 3))
    assert torch.equal(track_handles(feat, shifted, init, cur, 3, grid),
                       track_handles(up, F.interpolate(shifted, size=grid, mode="bilinear"), init, cur, 3))


def test_replay_computes_from_its_own_weight_copies_only_inside_its_context(setup):
    bm, ms, ctx, sched, _ = setup
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(8)) * sched[15]
    replay = record(bm, ms, ctx, x, sched[15])
    conv = bm.diffusion_model.output_blocks[0][0].in_layers[2]
    w = conv.weight
    with torch.inference_mode(False), torch.enable_grad():
        b = replay.bottleneck.clone().requires_grad_(True)
        with replay:
            assert "forward" in conv.__dict__  # a plain-torch forward from the copy, not the host's route
            swapped = replay.decode(b)
            swapped.abs().sum().backward()
    assert "forward" not in conv.__dict__ and conv.weight is w and w.is_inference()
    with torch.inference_mode():  # the host's own forward, as recorded
        torch.testing.assert_close(swapped.detach(), replay.feature, rtol=1e-5, atol=1e-5)
    assert b.grad.abs().sum() > 0


def test_a_unet_with_two_upsampling_levels_reads_the_last_one(comfy_cpu):
    # an SDXL-shaped UNet (three levels, two upsamplers): the feature comes after the second
    import comfy.ops
    import tiny_sd15
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    with torch.inference_mode():
        unet = UNetModel(**tiny_sd15.unet_config(
            dict(num_res_blocks=[1, 1, 1], channel_mult=[1, 2, 2], transformer_depth=[0, 1, 1],
                 transformer_depth_output=[0, 0, 1, 1, 1, 1]), model_channels=32, context_dim=64, num_heads=2),
            operations=comfy.ops.disable_weight_init)
        tiny_sd15.seeded_init_(unet, 3)
        ctx = torch.randn(1, 7, 64)
        replay = DecoderReplay(unet)
        unet(torch.randn(1, 4, 16, 16), torch.tensor([500.0]), ctx,
             transformer_options=replay.recording_options({}, ctx, None))
    assert replay.index == 3 and replay.feature.shape[-1] == 16  # latent resolution
    with torch.inference_mode(False), torch.enable_grad():
        torch.testing.assert_close(replay.decode(replay.bottleneck), replay.feature.clone(), rtol=1e-5, atol=1e-5)
