"""Diffusion semantic propagation: inject the optimized bottleneck during a sigma window."""
from __future__ import annotations

import torch
import torch.nn.functional as F


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


def feathered(editable: torch.Tensor, cells: int = 1) -> torch.Tensor:
    """An editable region at latent resolution [1,1,h,w] (1 = may change), feathered outward.

    The `cells` rings around it blend (0.5, 0.25, ...), so the sampler can join the edit to what is
    kept; cells further out are 0 and keep the input exactly.
    """
    m = editable.float()
    for _ in range(cells):
        m = torch.maximum(m, 0.5 * F.max_pool2d(m, 3, stride=1, padding=1))
    return m


class KeepOutside:
    """Blended propagation: outside the editable region the latent follows the inversion's own path.

    Use `wrapper` as an apply_model wrapper (it sees the sampler's latent and returns the denoised
    estimate). At each step the kept cells of the input are set to the inversion's latent at that
    sigma, so the UNet sees the untouched surroundings, and their denoised estimate is the clean
    latent, so the final step lands on it exactly: the rest of the image is the input's VAE
    reconstruction, whatever the sampler. `trajectory` is [(sigma, latent)] in ascending sigma from
    the clean latent at sigma 0, in the sampler's latent space, as ddim_invert records it.
    """
    KEY = "dragnoise_keep"

    def __init__(self, editable: torch.Tensor, trajectory: list[tuple[float, torch.Tensor]]):
        if not trajectory or trajectory[0][0] != 0.0:
            raise ValueError("KeepOutside needs the inversion's trajectory, starting at the clean latent")
        self.editable = editable
        self.sigmas = [float(s) for s, _ in trajectory]
        self.latents = [x for _, x in trajectory]
        self.clean = self.latents[0]

    def transformer_options(self, to: dict | None = None) -> dict:
        """`to` with this wrapper added (for a direct apply_model call; the node sets it on a MODEL clone)."""
        to = dict(to or {})
        wrappers = {k: dict(v) for k, v in to.get("wrappers", {}).items()}
        wrappers.setdefault("apply_model", {})[self.KEY] = [self.wrapper]
        return {**to, "wrappers": wrappers}

    def latent_at(self, sigma: float) -> torch.Tensor:
        """The inversion's latent at `sigma`: the visited one, or linear between the two around it
        (samplers that evaluate between schedule steps)."""
        s = self.sigmas
        if sigma <= s[0]:
            return self.latents[0]
        for i in range(1, len(s)):
            if sigma <= s[i] * (1 + 1e-4):
                if abs(sigma - s[i]) <= 1e-4 * s[i]:
                    return self.latents[i]
                w = (sigma - s[i - 1]) / (s[i] - s[i - 1])
                return torch.lerp(self.latents[i - 1], self.latents[i], w)
        return self.latents[-1]

    def wrapper(self, executor, x, t, *args, **kwargs):
        m = self.editable.to(device=x.device, dtype=x.dtype)
        sigma = float(torch.as_tensor(t).flatten().max())
        x = m * x + (1 - m) * self.latent_at(sigma).to(device=x.device, dtype=x.dtype)
        denoised = executor(x, t, *args, **kwargs)
        return m * denoised + (1 - m) * self.clean.to(device=denoised.device, dtype=denoised.dtype)
