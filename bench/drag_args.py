"""Command-line options shared by the scripts that drive whole drags through ComfyUI (no torch import:
bench/gpu_check.py parses them before ComfyUI's main.py has set the CUDA allocator up)."""


def drag_arguments(ap):
    """The device, the SD1.5 layout, the image size and the drag's schedule."""
    ap.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    ap.add_argument("--layout", default="full", choices=("full", "shallow"))
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--inversion-steps", type=int, default=35)
    ap.add_argument("--iterations", type=int, default=60)
    return ap
