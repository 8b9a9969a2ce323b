"""DragDiffusion-style baseline for the benchmark (not a node).

DragDiffusion optimizes the noisy latent z_t itself: every step runs the whole
UNet forward and backward. Motion supervision uses the same decoder feature
(output of the third decoder level, the official unet_feature_idx 3), the same
patch loss and the same handle tracking as the DragNoise engine, so the two
differ only in what is optimized and how much of the network each step runs.
Like DragDiffusion, the mask term compares the one-step DDIM update z_{t-1}
computed from the UNet's noise prediction, so the last decoder blocks are in
the graph too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from dragnoise import DragConfig, feature_block_index
from dragnoise.unet import ReplayWeights
from dragnoise.optimize import drag_loop


class FullUNet:
    """Whole-UNet forward with autograd, returning (eps, decoder feature at `level`).

    Use inside `with full:`, which swaps grad-safe weight copies into the UNet for the
    loop (the same mechanism as the DragNoise replay, so neither side pays a per-call
    re-parametrization the other does not).
    """

    def __init__(self, unet, context: torch.Tensor, timestep: torch.Tensor, level: int = 3, patches=()):
        self.unet = unet
        self.patches = list(patches)  # the model's own output-block patches, applied first
        self.index = feature_block_index(unet, level)
        self.weights = ReplayWeights([unet])  # each tensor stays where it is
        self.context = context.clone() if context.is_inference() else context
        self.timestep = timestep.clone() if timestep.is_inference() else timestep

    def __enter__(self):
        self.weights.__enter__()
        return self

    def __exit__(self, *exc):
        return self.weights.__exit__(*exc)

    @property
    def dtype(self):
        return next(self.unet.parameters()).dtype

    def __call__(self, z: torch.Tensor):
        grabbed = {}

        def grab(h, hsp, options):  # input of output block index+1 = output of block index
            if options["block"][1] == self.index + 1:
                grabbed["feature"] = h
            return h, hsp
        options = {"patches": {"output_block_patch": self.patches + [grab]}}
        eps = self.unet(z, self.timestep, self.context, transformer_options=options)
        return eps, grabbed["feature"]


@dataclass
class LatentDragResult:
    latent: torch.Tensor
    handles: list
    iterations: int
    reached: bool
    losses: list = field(default_factory=list)


def ddim_step(z: torch.Tensor, eps: torch.Tensor, abar: float, abar_prev: float) -> torch.Tensor:
    """Deterministic DDIM update z_t -> z_{t-1} (VP space, unit-variance latents)."""
    x0 = (z - (1 - abar) ** 0.5 * eps) / abar ** 0.5
    return abar_prev ** 0.5 * x0 + (1 - abar_prev) ** 0.5 * eps


def optimize_latent(unet: FullUNet, z_t: torch.Tensor, handles, targets, feature_size,
                    abar: float, abar_prev: float, config: DragConfig = DragConfig(),
                    editable: torch.Tensor | None = None,
                    callback: Callable[[int, int, dict], None] | None = None) -> LatentDragResult:
    """DragDiffusion's loop: motion supervision + tracking on z_t, mask loss on z_{t-1}.

    The engine's drag_loop with the whole UNet as the forward. feature_size (h, w) is the
    supervision grid the handles live on (half the image, as in both official codes); the feature
    is upsampled to it every step, as DragDiffusion does. editable (latent grid, 1 = may change)
    enables the mask term lam * |(z_{t-1} - z0_{t-1}) * (1 - M)|_1.
    """
    def features(z):
        eps, feat = unet(z)
        return F.interpolate(feat, size=feature_size, mode="bilinear"), eps.float()

    with unet:  # grad-safe weights swapped in for the loop
        regularizer = None
        if editable is not None and config.lam > 0:
            with torch.no_grad():
                z0 = z_t.to(unet.dtype)
                prev0 = ddim_step(z0.float(), features(z0)[1], abar, abar_prev)

            def regularizer(z, eps):
                return config.lam * ((ddim_step(z, eps, abar, abar_prev) - prev0) * (1 - editable)).abs().sum()
        r = drag_loop(features, z_t.to(unet.dtype), handles, targets, config, regularizer, callback)
    return LatentDragResult(r.bottleneck.float(), r.handles, r.iterations, r.reached, r.losses)
