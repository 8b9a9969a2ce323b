"""Refuse an edit that cannot fit before it starts (issue 24, part 3).

The estimate is the one bench/sdxl.py's meta-device count gives: resident weights + the replayed decoder
blocks' grad-safe weight copies + the activations autograd saves for one iteration (+ the feature map
upsampled to the half-resolution grid unless low_memory). The caller passes the free memory (the node
takes it from ComfyUI's model_management.get_free_memory), so the check itself needs no device.
"""
from __future__ import annotations

GIB = 2 ** 30


class EditTooLarge(MemoryError):
    """The edit's estimated memory exceeds the free memory; raised before any work is done."""

    def __init__(self, estimate_bytes: int, free_bytes: int):
        self.estimate_bytes, self.free_bytes = int(estimate_bytes), int(free_bytes)
        super().__init__(f"DragNoise edit needs about {self.estimate_bytes / GIB:.2f} GiB but only "
                         f"{self.free_bytes / GIB:.2f} GiB is free; use a smaller image, low_memory, "
                         f"or free memory (unload other models)")


def estimate_bytes(counts: dict, low_memory: bool = False) -> int:
    """Bytes of one edit from bench/sdxl.py's count() dict (its *_gib entries)."""
    total = counts["weights_gib"] + counts["replayed_weight_copies_gib"] + counts["saved_activations_gib"]
    if not low_memory:
        total += counts["upsampled_feature_gib"]
    return int(total * GIB)


def check_fits(estimate: int, free: int) -> None:
    """Raise EditTooLarge when the estimate exceeds the free memory."""
    if estimate > free:
        raise EditTooLarge(estimate, free)
