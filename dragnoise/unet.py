"""Split a ComfyUI-style UNet at its bottleneck and replay the decoder with autograd.

The encoder half and everything the decoder needs (skips, time embedding,
ControlNet residuals, transformer options) are recorded from one ordinary
forward through the host's own code, via its patch points. Optimization then
re-runs only output blocks 0..k (bottleneck -> third decoder layer).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class NotAUNetError(ValueError):
    """The model has no UNet bottleneck DragNoise can optimize."""


def feature_block_index(unet, level: int = 3) -> int:
    """Index of the output block that ends decoder level `level` (its upsampler included).

    For SD1.5 level 3 is output_blocks[8], diffusers' up_blocks[2]: the official code's feature
    index 3, at latent resolution. A UNet with fewer upsampling levels (SDXL has two) reads the
    last one, whose output is likewise at latent resolution: our choice, the official code is
    SD1.5 only. Counted from the upsamplers, so channel counts and res blocks per level don't matter.
    """
    blocks = getattr(unet, "output_blocks", None)
    # The bottleneck is what enters the decoder: the middle block's output, or the encoder's where a
    # distilled UNet has no middle block (KOALA-700M; ComfyUI sets middle_block = None)
    if not hasattr(unet, "middle_block") or blocks is None or not hasattr(unet, "input_blocks"):
        raise NotAUNetError(
            f"{type(unet).__name__} has no UNet middle block (bottleneck); DragNoise needs a "
            "UNet model such as SD1.5 or SDXL, not a transformer (DiT) model")
    # the feature is read at the input of the following block, so that block must exist
    ups = [i for i, block in enumerate(blocks)
           if i + 1 < len(blocks) and any(type(m).__name__ == "Upsample" for m in block.children())]
    if not ups:
        raise NotAUNetError(f"{type(unet).__name__} has no upsampling decoder level to read the drag feature from")
    return ups[min(level, len(ups)) - 1]


def _grad_safe(t):
    # Host weights and activations may be inference tensors (created under
    # torch.inference_mode); autograd refuses to save those, so copy them. A weight
    # that asks for grad is detached so nothing accumulates into the user's model.
    if not isinstance(t, torch.Tensor):
        return t
    if t.is_inference():
        return t.clone()
    return t.detach() if t.requires_grad else t


def _own_weights(layer, like=None):
    return layer._parameters.get("weight"), layer._parameters.get("bias")


def plain_forward(layer, weight, bias):
    """A forward computing `layer` in plain torch from the given weight and bias, chosen by the layer's
    interface (convolution, group/layer norm, linear), or None for a kind not known here. The tensors
    follow the input's dtype, as the host's own casts do."""
    def like(t, x):
        return t if t is None or t.dtype == x.dtype else t.to(x.dtype)
    if isinstance(layer, torch.nn.modules.conv._ConvNd) and not layer.transposed:
        return lambda x, *_, **__: layer._conv_forward(x, like(weight, x), like(bias, x))
    if isinstance(layer, torch.nn.GroupNorm):
        return lambda x, *_, **__: F.group_norm(x, layer.num_groups, like(weight, x), like(bias, x), layer.eps)
    if isinstance(layer, torch.nn.LayerNorm):
        return lambda x, *_, **__: F.layer_norm(x, layer.normalized_shape, like(weight, x), like(bias, x), layer.eps)
    if weight is not None and weight.ndim == 2 and (isinstance(layer, torch.nn.Linear) or hasattr(layer, "in_features")):
        return lambda x, *_, **__: F.linear(x, like(weight, x), like(bias, x))
    return None


class ReplayWeights:
    """Context manager: inside, every weighted layer of `modules` computes in plain torch from its own
    copy of the weight it would use, on `like`'s device and in its dtype; the originals after (also on
    an exception).

    Why: a host routes weights through its own code on every call (ComfyUI: casts, LoRA patches applied
    on the fly under lowvram, DynamicVRAM's VRAM copies, inference tensors). Autograd must not save what
    that code hands out (an inference tensor, or memory the host reuses), and a CUDA graph must not
    replay it. So `effective(layer, like)` is asked once per edit for the (weight, bias) the host would use,
    copies are made, and the replay never enters the host's route. Layers of a kind plain_forward does
    not know keep their own forward with grad-safe parameter copies. `make(t)` turns each tensor into the
    one swapped in (default: a grad-safe copy on the device; the memory count passes meta tensors).
    """

    def __init__(self, modules, like: torch.Tensor | None = None, effective=_own_weights, make=None):
        if make is None:
            make = _grad_safe if like is None else \
                (lambda t: _grad_safe(t).to(like.device, like.dtype if t.is_floating_point() else t.dtype))
        self.forwards, self.swaps, self.tensors = [], [], []
        for module in modules:
            for layer in module.modules():
                w, b = _own_weights(layer)
                if w is None and b is None:
                    continue
                w, b = effective(layer, like)
                w, b = (None if t is None else make(t) for t in (w, b))
                forward = plain_forward(layer, w, b)
                if forward is not None:
                    self.forwards.append((layer, forward, layer.__dict__.get("forward")))
                    self.tensors += [t for t in (w, b) if t is not None]
                    continue
                for store in (layer._parameters, layer._buffers):  # an unknown kind: swap its tensors
                    for key, t in store.items():
                        if isinstance(t, torch.Tensor):
                            new = make(t)
                            new = torch.nn.Parameter(new, requires_grad=False) if store is layer._parameters else new
                            self.swaps.append((store, key, t, new))
                            self.tensors.append(new)
        self.active = False

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    def __enter__(self):
        for layer, forward, _ in self.forwards:
            layer.forward = forward  # an instance attribute: nn.Module.__call__ finds it first
        for store, key, _, new in self.swaps:
            store[key] = new
        self.active = True
        return self

    def __exit__(self, *exc):
        for layer, _, before in self.forwards:
            if before is None:
                layer.__dict__.pop("forward", None)
            else:
                layer.forward = before
        for store, key, original, _ in self.swaps:
            store[key] = original
        self.active = False
        return False


class DecoderReplay:
    """Records one UNet forward and replays bottleneck -> decoder feature differentiably."""

    def __init__(self, unet, level: int = 3, effective=_own_weights):
        self.unet = unet
        self.effective = effective  # (weight, bias) a layer computes with: see ReplayWeights
        self.index = feature_block_index(unet, level)
        self.skips: dict[int, torch.Tensor] = {}
        self.h_in: dict[int, torch.Tensor] = {}
        self.transformer_index: dict[int, int] = {}
        self.emb = None
        self.y = None
        self.ctrl_mid = None
        self.context = None
        self.options = None
        self.user_output_patches = []
        self.out_dtype = None  # the UNet input's dtype: the forward casts to it before the `out` head
        self._weights = None

    # --- recording, inside the host's forward -------------------------------------------------
    def _capture_emb(self, emb, model_channels, transformer_options):
        # the host adds the ADM embedding (SDXL: pooled text + size embeddings) right after this
        # patch point; the replayed blocks need the sum
        label = getattr(self.unet, "label_emb", None)
        self.emb = emb if self.y is None or label is None else emb + label(self.y)
        return emb

    def _capture_output(self, h, hsp, transformer_options):
        i = transformer_options["block"][1]
        # every skip (references, no copies): blocks after the feature layer serve finish() (previews)
        self.skips[i] = hsp
        self.transformer_index[i] = transformer_options.get("transformer_index", 0)
        if i <= self.index + 1:
            self.h_in[i] = h
        return h, hsp

    def recording_options(self, transformer_options: dict, context, control, y=None) -> dict:
        """Options for the recording forward: the caller's, plus our two capture patches."""
        self.context = context
        self.y = y
        self.options = transformer_options
        patches = {k: list(v) for k, v in transformer_options.get("patches", {}).items()}
        self.user_output_patches = list(patches.get("output_block_patch", []))
        # first, so we see block inputs before any user patch alters them
        patches["output_block_patch"] = [self._capture_output] + self.user_output_patches
        patches["emb_patch"] = patches.get("emb_patch", []) + [self._capture_emb]
        # ControlNet adds its middle residual right after the middle block; read it
        # now, since the forward pops it. The bottleneck we optimize is before it.
        mids = (control or {}).get("middle") or []
        self.ctrl_mid = mids[-1] if mids else None
        return {**transformer_options, "patches": patches}

    @property
    def bottleneck(self) -> torch.Tensor:
        h = self.h_in[0]
        return h - self.ctrl_mid if self.ctrl_mid is not None else h

    @property
    def feature(self) -> torch.Tensor:
        """The recorded decoder feature (output of output block `index`)."""
        return self.h_in[self.index + 1]

    def release(self) -> None:
        """Drop every recorded tensor and the grad-safe weight copies (after `with replay:` has exited).

        Closures that outlive a cancelled run (a progress callback kept by the exception's traceback)
        may still reach this object; it then holds nothing heavy.
        """
        self.skips, self.h_in, self.transformer_index = {}, {}, {}
        self.emb = self.y = self.ctrl_mid = self.context = self.options = None
        self._weights = None

    # --- replay, with autograd ------------------------------------------------------------------
    def prepare(self):
        """Make recorded tensors and the replayed blocks' weights safe for autograd."""
        if self._weights is None:
            self._weights = ReplayWeights(self.unet.output_blocks[: self.index + 1], self.bottleneck, self.effective)
            # only the replayed blocks' skips: finish() runs without autograd and needs no copies
            self.skips = {k: _grad_safe(v) if k <= self.index else v for k, v in self.skips.items()}
            self.emb = _grad_safe(self.emb)
            self.context = _grad_safe(self.context)
            self.ctrl_mid = _grad_safe(self.ctrl_mid)
        return self

    def __enter__(self):
        """Within `with replay:` the replayed blocks compute from their own weight copies (see ReplayWeights)."""
        self.prepare()._weights.__enter__()
        return self

    def __exit__(self, *exc):
        return self._weights.__exit__(*exc)

    def decode(self, bottleneck: torch.Tensor) -> torch.Tensor:
        """Output of output block `index` for the given bottleneck."""
        if self._weights is None or not self._weights.active:
            with self:
                return self.decode(bottleneck)
        h = bottleneck if self.ctrl_mid is None else bottleneck + self.ctrl_mid
        return self._output_blocks(h, range(self.index + 1))

    @torch.inference_mode()
    def finish(self, feature: torch.Tensor) -> torch.Tensor:
        """The UNet output (e.g. the noise prediction) from a decoder feature, no autograd: the output
        blocks after the feature layer and the `out` head, as the forward ends. For previews."""
        h = self._output_blocks(feature.detach(), range(self.index + 1, len(self.unet.output_blocks)))
        return self.unet.out(h if self.out_dtype is None else h.type(self.out_dtype))

    def _output_blocks(self, h: torch.Tensor, blocks) -> torch.Tensor:
        options = dict(self.options)
        for i in blocks:
            options["block"] = ("output", i)
            options["transformer_index"] = self.transformer_index.get(i, 0)
            hsp = self.skips[i]
            for p in self.user_output_patches:
                h, hsp = p(h, hsp, options)
            h = torch.cat([h, hsp], dim=1)
            nxt = self.skips.get(i + 1)
            h = self.unet.output_blocks[i](h, self.emb, self.context, options, None if nxt is None else nxt.shape)
        return h
