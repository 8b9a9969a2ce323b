"""A deliberately plain reference of the official DragNoise optimization loop, for tests only.

Written from the paper and from what the official code (haofengl/DragNoise, on DragDiffusion's
drag_utils) does, not from this pack's engine: every iteration runs the *whole* UNet with the
middle-block output replaced by the optimized bottleneck, upsamples the decoder feature of up-block
index 3 to the supervision grid with F.interpolate (bilinear), and does the official arithmetic on
(row, col) points: integer slicing for the detached source patch, four-corner bilinear weights for
the unit-step patch, an unclipped (2 r2 + 1)^2 search for tracking, handles within 2 px skipped,
and a stop when every handle is closer than 2 px. Adam on the bottleneck; no mask term (lam 0).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def plain_unet(unet, x, t, context, h_sample=None):
    """ComfyUI's UNetModel run block by block like the official modified diffusers UNet.

    Returns (noise prediction, intermediates): intermediates[0] is the middle-block output (or
    h_sample, which replaces it), intermediates[k] the output of decoder level k (its upsampler
    included), as the official `all_intermediate_features`.
    """
    from comfy.ldm.modules.diffusionmodules.openaimodel import Upsample, forward_timestep_embed
    from comfy.ldm.modules.diffusionmodules.util import timestep_embedding
    emb = unet.time_embed(timestep_embedding(t, unet.model_channels).to(x.dtype))
    skips, h = [], x
    for block in unet.input_blocks:
        h = forward_timestep_embed(block, h, emb, context, {})
        skips.append(h)
    h = forward_timestep_embed(unet.middle_block, h, emb, context, {})
    if h_sample is not None:
        h = h_sample
    intermediates = [h]
    for i, block in enumerate(unet.output_blocks):
        h = torch.cat([h, skips.pop()], dim=1)
        h = forward_timestep_embed(block, h, emb, context, {}, skips[-1].shape if skips else None)
        if any(isinstance(m, Upsample) for m in block.children()) or i == len(unet.output_blocks) - 1:
            intermediates.append(h)
    return unet.out(h), intermediates


def interpolate_feature_patch(feat, y, x, r):
    """Bilinear patch of radius r at fractional (y, x), from the four integer-offset slices."""
    x0, y0 = torch.floor(x).long(), torch.floor(y).long()
    x1, y1 = x0 + 1, y0 + 1
    wa = (x1.float() - x) * (y1.float() - y)
    wb = (x1.float() - x) * (y - y0.float())
    wc = (x - x0.float()) * (y1.float() - y)
    wd = (x - x0.float()) * (y - y0.float())
    patch = lambda yy, xx: feat[:, :, yy - r:yy + r + 1, xx - r:xx + r + 1]  # noqa: E731
    return patch(y0, x0) * wa + patch(y1, x0) * wb + patch(y0, x1) * wc + patch(y1, x1) * wd


def point_tracking(F0, F1, handles, handles_init, r2):
    with torch.no_grad():
        for i in range(len(handles)):
            p0, p = handles_init[i], handles[i]
            f0 = F0[:, :, int(p0[0]), int(p0[1])]
            r_lo, c_lo = int(p[0]) - r2, int(p[1]) - r2
            window = F1[:, :, r_lo:int(p[0]) + r2 + 1, c_lo:int(p[1]) + r2 + 1]
            dist = (f0[..., None, None] - window).abs().sum(dim=1)[0]
            row, col = divmod(dist.argmin().item(), dist.shape[-1])
            handles[i][0] = p[0] - r2 + row
            handles[i][1] = p[1] - r2 + col
    return handles


def official_drag(unet, x, t, context, handles_yx, targets_yx, grid, iterations, lr, r1=1, r2=3, level=3):
    """The official loop. handles/targets: (row, col) on the grid. Returns (bottleneck, per-step handles)."""
    def features(h_sample):
        _, inter = plain_unet(unet, x, t, context, h_sample)
        return F.interpolate(inter[level], grid, mode="bilinear"), inter[0]

    with torch.no_grad():
        F0, h = features(None)
    h = h.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([h], lr=lr)
    handles = [torch.tensor(p, dtype=torch.float32) for p in handles_yx]
    targets = [torch.tensor(p, dtype=torch.float32) for p in targets_yx]
    init = [p.clone() for p in handles]
    history = []
    for step in range(iterations):
        F1, _ = features(h)
        if step != 0:
            handles = point_tracking(F0, F1, handles, init, r2)
        if all((p - q).norm() < 2.0 for p, q in zip(handles, targets)):
            break
        history.append([p.tolist() for p in handles])
        loss = 0.0
        for p, q in zip(handles, targets):
            if (q - p).norm() < 2.0:
                continue
            d = (q - p) / (q - p).norm()
            src = F1[:, :, int(p[0]) - r1:int(p[0]) + r1 + 1, int(p[1]) - r1:int(p[1]) + r1 + 1].detach()
            dst = interpolate_feature_patch(F1, p[0] + d[0], p[1] + d[1], r1)
            loss = loss + (2 * r1 + 1) ** 2 * F.l1_loss(src, dst)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return h.detach(), history
