"""Deterministic DDIM inversion in k-diffusion sigma space (x = x0 + sigma * eps)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch


def inversion_sigmas(ddim_sigmas: Sequence[float], inverted_steps: int, sigma_start: float) -> list[float]:
    """Ascending sigma path for inverting `inverted_steps` steps of a DDIM schedule.

    `ddim_sigmas` is the descending sampling schedule ending in 0 (ComfyUI's
    ddim_uniform: timesteps 981 ... 1, then 0). The clean latent sits at
    `sigma_start` (the official code's final alpha, alphas_cumprod[0]); the path
    ends at the sigma where denoising resumes, ddim_sigmas[steps - inverted_steps].
    """
    steps = len(ddim_sigmas) - 1
    if not 1 <= inverted_steps <= steps:
        raise ValueError(f"inverted_steps must be in [1, {steps}], got {inverted_steps}")
    ascending = [float(s) for s in reversed(list(ddim_sigmas)[:-1])]
    return [float(sigma_start)] + ascending[:inverted_steps]


@torch.no_grad()
def ddim_invert(denoise: Callable[[torch.Tensor, float], torch.Tensor], x: torch.Tensor,
                sigmas: Sequence[float], callback: Callable[[int, int, torch.Tensor], None] | None = None,
                trajectory: list | None = None) -> torch.Tensor:
    """Run the clean latent x up the path `sigmas`; `denoise(x, sigma)` returns the x0 estimate.

    Like the official code (diffusers-style inversion) the clean latent is the sample at sigmas[0]
    (its final_alpha_cumprod, alphas_cumprod[0]) *as it is*: in sigma space that sample is
    x * sqrt(1 + sigma_0^2), so the UNet's first input is exactly x. The noise for the step
    sigma_i -> sigma_{i+1} is predicted at the *next* timestep from the current sample, and the
    input is rescaled so the UNet sees the current sample as the official code does
    (x_i / sqrt(1 + sigma_i^2)); ComfyUI's model then divides by sqrt(1 + sigma_{i+1}^2) itself.

    `trajectory`, if given, receives (sigma, latent) for the clean latent (sigma 0) and every sample
    on the path, on the CPU: what propagation keeps outside the editable region.
    """
    total = len(sigmas) - 1
    if trajectory is not None:
        trajectory.append((0.0, x[:1].detach().cpu()))
    x = x * (1 + float(sigmas[0]) ** 2) ** 0.5
    if trajectory is not None:
        trajectory.append((float(sigmas[0]), x[:1].detach().cpu()))
    for i in range(total):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        x_in = x * ((1 + s_next ** 2) / (1 + s ** 2)) ** 0.5
        eps = (x_in - denoise(x_in, s_next)) / s_next
        x = x + (s_next - s) * eps
        if trajectory is not None:
            trajectory.append((s_next, x[:1].detach().cpu()))
        if callback is not None:
            callback(i, total, x)
    return x
