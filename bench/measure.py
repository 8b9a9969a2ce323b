"""Measurement helpers shared by the speed benchmarks (bench/run.py, bench/sdxl.py): peak memory per
phase, timing, the propagation loop and the benchmark's drag points."""
from __future__ import annotations

import ctypes
import gc
import resource
import statistics
import time

import torch

STEPS, INVERTED = 50, 35  # the official DDIM schedule and editing step (t = 35 of 50)


# --- measurement helpers --------------------------------------------------------------------------
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of a phase above what was in use when it began, in bytes.

    CUDA: torch.cuda.max_memory_allocated. CPU: the process's peak RSS (VmHWM),
    reset at the start of the phase through /proc/self/clear_refs (Linux); where
    that is not allowed, getrusage's ru_maxrss, which only grows over the whole
    process and so reads 0 for a phase that needs less than an earlier one.
    """

    def __init__(self, device):
        self.device = device
        self.how = "cuda.max_memory_allocated" if device.type == "cuda" else None

    def __enter__(self):
        gc.collect()
        if self.device.type == "cuda":
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
        else:
            try:
                ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back so RSS is honest
            except (OSError, AttributeError):
                pass
            self.base = _proc_status("VmRSS") or 0
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
                self.how = "VmHWM (reset per phase)"
            except OSError:
                self.how = "ru_maxrss (process-wide)"
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            sync(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.how.startswith("VmHWM"):
            peak = _proc_status("VmHWM") or 0
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = max(peak - self.base, 0)
        return False


def timed(device, fn):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


class StepClock:
    """Optimizer callback recording when each step ends; per-step time is the median gap."""

    def __init__(self, device):
        self.device, self.stamps = device, []

    def __call__(self, *_):
        sync(self.device)
        self.stamps.append(time.perf_counter())

    def per_step(self) -> float:
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        if not gaps:
            raise SystemExit("need at least 2 optimization iterations to time one")
        return statistics.median(gaps)


def propagate(denoise, xt, bottleneck, sched, start: int, sample_steps: int):
    """DDIM from the editing step with `bottleneck` injected (end_step 0); denoise(x, sigma, options)."""
    from dragnoise import PropagationWindow
    window = PropagationWindow(bottleneck, sched[start], sched[STEPS - 1])
    to = window.transformer_options()
    x = xt
    for i in range(start, start + sample_steps):
        d = denoise(x, sched[i], {**to, "sigmas": torch.tensor([sched[i]])})
        x = d + (x - d) / sched[i] * sched[i + 1]
    return x


def drag_points(grid_w: int, grid_h: int):
    """Two drags of 1/8 of the grid (right, down) on the half-resolution supervision grid."""
    dx, dy = round(grid_w / 8), round(grid_h / 8)
    hx, hy = round(grid_w * 0.35), round(grid_h * 0.5)
    gx, gy = round(grid_w * 0.6), round(grid_h * 0.35)
    return [(hx, hy), (gx, gy)], [(hx + dx, hy), (gx, gy + dy)]
