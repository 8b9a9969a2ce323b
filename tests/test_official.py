"""The engine's default optimization computes the official DragNoise loop (tests/official_reference.py)
on identical weights: same tracked handles at every iteration, same optimized bottleneck."""
import pytest
import torch

from dragnoise import DecoderReplay, DragConfig, ddim_invert, inversion_sigmas, optimize_bottleneck
from official_reference import official_drag, plain_unet

GRID = (64, 64)                       # half of the 128 px image the 16x16 latent stands for
HANDLES = [(20.0, 30.0), (40.0, 22.0)]  # (x, y) on the grid, as the engine takes them
TARGETS = [(31.0, 30.0), (40.0, 35.0)]
T = 681                                # the editing step's timestep (35 of 50 inverted)


@pytest.fixture(scope="module")
def weights(comfy_cpu):
    """The same seeded weights of a narrow shallow SD1.5 layout (width 32: the reference runs the
    whole UNet every step) twice: as inference tensors, what the engine meets in a node (ComfyUI's
    loaders create weights under inference_mode), and as a plain module for the reference."""
    import comfy.ops
    import tiny_sd15
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
    cfg = tiny_sd15.unet_config(model_channels=32)
    plain = tiny_sd15.seeded_init_(UNetModel(**cfg, operations=comfy.ops.disable_weight_init), seed=0)
    with torch.inference_mode():
        host = UNetModel(**cfg, operations=comfy.ops.disable_weight_init)
        host.load_state_dict(plain.state_dict())
    return host, plain.requires_grad_(False)


def engine_drag(unet, x, t, ctx, iterations, lr):
    replay = DecoderReplay(unet)
    with torch.inference_mode():
        unet(x, t, ctx, transformer_options=replay.recording_options({}, ctx, None))
    steps = []
    # stop_distance 1.99: the official "closer than 2 px" for points on whole cells (paper: 1 px)
    config = DragConfig(iterations=iterations, lr=lr, lam=0.0, stop_distance=1.99)
    with torch.inference_mode(False), torch.enable_grad(), replay:
        r = optimize_bottleneck(replay.decode, replay.bottleneck, HANDLES, TARGETS, config,
                                callback=lambda k, n, info: steps.append(info["handles"].tolist()), grid=GRID)
    return r, steps


@pytest.mark.parametrize("lr", [0.2, 1.0])  # random weights: large steps make the handles move
def test_engine_default_is_the_official_loop(weights, lr):
    engine_unet, plain = weights
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(6))
    t = torch.tensor([float(T)])
    r, engine_steps = engine_drag(engine_unet, x, t, ctx, 12, lr)
    ref_b, ref_steps = official_drag(plain, x, t, ctx, [(y, x_) for x_, y in HANDLES], [(y, x_) for x_, y in TARGETS],
                                     GRID, 12, lr)
    ref_steps = [[[x_, y] for y, x_ in step] for step in ref_steps]  # back to (x, y)
    assert engine_steps == ref_steps, "the tracked handles differ from the official loop's"
    assert len({str(s) for s in ref_steps}) > 1, "no handle moved: the comparison would be vacuous"
    # equal up to float rounding (measured: 0 at lr 0.2, 8e-6 at lr 1.0 on the width-64 layout;
    # Adam moved the bottleneck by about lr per element and step)
    change = (ref_b - r.bottleneck).abs().max().item()
    assert change < 1e-4, f"bottleneck differs by {change:.2e}"


def test_plain_unet_is_the_host_forward(weights):
    # the reference's block-by-block forward is the host's UNet forward (so it runs the same model)
    engine_unet, plain = weights
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(7))
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(8))
    t = torch.tensor([float(T)])
    with torch.inference_mode():
        torch.testing.assert_close(plain_unet(plain, x, t, ctx)[0], engine_unet(x, t, ctx), rtol=1e-4, atol=1e-5)


def test_inversion_starts_from_the_official_model_input(tiny_model):
    # the official inversion feeds the clean latent itself to the UNet first (at timestep 1)
    import comfy.samplers
    ms = tiny_model.model.model_sampling
    sched = [float(s) for s in comfy.samplers.calculate_sigmas(ms, "ddim_uniform", 50)]
    path = inversion_sigmas(sched, 35, float(ms.sigma_min))
    z = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(9))
    seen = []

    def denoise(x_in, s):
        seen.append((x_in / (1 + s ** 2) ** 0.5, s))  # what ComfyUI's model hands the UNet
        return x_in * 0
    ddim_invert(denoise, z, path)
    first, s = seen[0]
    assert abs(float(ms.timestep(torch.tensor(s))) - 1) < 0.5
    torch.testing.assert_close(first, z, rtol=1e-6, atol=1e-6)


# stop 1.99 (official): all 40 iterations; 8: both handles arrive and the loop stops early
@pytest.mark.parametrize("low_memory, stop", [(False, 1.99), (True, 1.99), (False, 8.0)])
def test_captured_loop_computes_the_eager_loop(weights, low_memory, stop):
    """The loop a CUDA graph replays (capture="graph"), run here without a graph ("direct"): the same
    tracked handles at every iteration, losses, stop and bottleneck as the eager loop, mask loss included.
    (On a GPU the graph replays exactly this body; bench/redrag.py compares the two there.)"""
    engine_unet, _ = weights
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    ctx = torch.randn(1, 77, 768, generator=torch.Generator().manual_seed(6))
    replay = DecoderReplay(engine_unet)
    with torch.inference_mode():
        engine_unet(x, torch.tensor([float(T)]), ctx, transformer_options=replay.recording_options({}, ctx, None))
    keep = torch.ones(1, 1, *replay.bottleneck.shape[-2:])
    keep[..., :1, :] = 0
    runs = {}
    for capture in (None, "direct"):
        steps = []
        config = DragConfig(iterations=40, lr=1.0, lam=0.1, stop_distance=stop)
        with torch.inference_mode(False), torch.enable_grad(), replay:
            r = optimize_bottleneck(replay.decode, replay.bottleneck, HANDLES, TARGETS, config, keep,
                                    callback=lambda k, n, info: steps.append((k, info["handles"].tolist(),
                                                                              float(info["loss"]))),
                                    grid=GRID, low_memory=low_memory, capture=capture)
        runs[capture] = r, steps
    (eager, eager_steps), (direct, direct_steps) = runs[None], runs["direct"]
    assert len({str(s[1]) for s in eager_steps}) > 1, "no handle moved: the comparison would be vacuous"
    assert direct_steps == eager_steps
    assert (direct.iterations, direct.reached, direct.handles, direct.losses) == \
           (eager.iterations, eager.reached, eager.handles, eager.losses)
    assert torch.equal(direct.bottleneck, eager.bottleneck)
    assert eager.reached == (stop > 2), (eager.iterations, eager.handles)
