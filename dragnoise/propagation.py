"""Diffusion semantic propagation: inject the optimized bottleneck during a sigma window."""
from __future__ import annotations

import torch


class PropagationWindow:
    """Replaces the UNet bottleneck with `bottleneck` while sigma_lo <= sigma <= sigma_hi.

    Use `wrapper` as a diffusion-model wrapper and `output_block_patch` as an
    output block patch on a clone of the model. The ControlNet middle residual of
    the current step, if any, is added on top of the injected bottleneck, as the
    official code adds its mid-block residual after replacing the sample.
    """
    KEY = "dragnoise_propagation"

    def __init__(self, bottleneck: torch.Tensor, sigma_hi: float, sigma_lo: float, rtol: float = 1e-4,
                 how_to_sample: str = "start sampling at the editing step"):
        self.bottleneck = bottleneck
        self.sigma_edit = sigma_hi
        self.sigma_hi = sigma_hi * (1 + rtol)
        self.sigma_lo = sigma_lo * (1 - rtol)
        self.how_to_sample = how_to_sample

    def transformer_options(self, **extra) -> dict:
        """transformer_options that apply this window to a direct UNet / apply_model call (the node
        sets the same wrapper and patch on a MODEL clone instead)."""
        return {"patches": {"output_block_patch": [self.output_block_patch]},
                "wrappers": {"diffusion_model": {self.KEY: [self.wrapper]}}, **extra}

    def check_schedule(self, sample_sigmas) -> None:
        """Refuse a sampler that does not start at the editing step: the inverted latent only makes
        sense there, and a schedule that misses the window would silently drop the drag."""
        if sample_sigmas is None or len(sample_sigmas) == 0:
            return
        first = float(sample_sigmas[0])
        if abs(first - self.sigma_edit) > (self.sigma_hi - self.sigma_edit):
            raise ValueError(f"DragNoise propagation: the sampler starts at sigma {first:.4g}, not at the editing "
                             f"step's {self.sigma_edit:.4g}: {self.how_to_sample}")

    def active(self, sigmas) -> bool:
        if sigmas is None:
            return False
        s = float(torch.as_tensor(sigmas).flatten().max())
        return self.sigma_lo <= s <= self.sigma_hi

    def wrapper(self, executor, x, timesteps, context, y, control, transformer_options, **kwargs):
        self.check_schedule(transformer_options.get("sample_sigmas"))
        mids = (control or {}).get("middle") or []
        state = {"on": self.active(transformer_options.get("sigmas")), "ctrl_mid": mids[-1] if mids else None}
        transformer_options = {**transformer_options, self.KEY: state}
        return executor(x, timesteps, context, y, control, transformer_options, **kwargs)

    def output_block_patch(self, h, hsp, transformer_options):
        state = transformer_options.get(self.KEY)
        if state is None or not state["on"] or transformer_options["block"][1] != 0:
            return h, hsp
        b = self.bottleneck.to(device=h.device, dtype=h.dtype)
        if b.shape[1:] != h.shape[1:]:
            raise ValueError(f"DragNoise propagation: the optimized bottleneck has shape {tuple(b.shape[1:])} but "
                             f"this sampler's latent gives {tuple(h.shape[1:])}: sample the latent that was dragged "
                             "(the inversion's inverted_latent), at the same size")
        # every chunk (cond, uncond, batch items) gets the edited bottleneck, as the official code repeats it
        h = b.expand(h.shape[0], -1, -1, -1)
        if state["ctrl_mid"] is not None:
            h = h + state["ctrl_mid"]
        return h, hsp
