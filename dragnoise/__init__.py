"""DragNoise engine: plain torch, no ComfyUI server needed.

The pieces follow the paper's names: DDIM inversion to the editing step, a
bottleneck optimized by semantic alignment with handle tracking, and
diffusion semantic propagation of that bottleneck while denoising.
"""
from .points import DragPoints, PointsError, Region, parse_points
from .inversion import ddim_invert, inversion_sigmas
from .unet import DecoderReplay, feature_block_index, NotAUNetError
from .optimize import DragConfig, DragResult, drag_loop, optimize_bottleneck, alignment_loss, track_handles
from .propagation import KeepOutside, PropagationWindow, feathered

__all__ = [
    "DragPoints", "PointsError", "Region", "parse_points",
    "ddim_invert", "inversion_sigmas",
    "DecoderReplay", "feature_block_index", "NotAUNetError",
    "DragConfig", "DragResult", "drag_loop", "optimize_bottleneck", "alignment_loss", "track_handles",
    "KeepOutside", "PropagationWindow", "feathered",
]
