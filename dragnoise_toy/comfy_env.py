"""Import ComfyUI's model code (no server) for the benchmark, on CPU or CUDA.

ComfyUI is found at $COMFYUI_PATH or <repo>/.host/ComfyUI. Loading a UNet through
comfy.sd imports a few packages that the benchmark never runs (tokenizers for text
encoders, scipy/torchsde for other samplers, Pillow/yaml for file I/O). On a bare
GPU box without them, `stub_missing=True` puts empty placeholder modules in their
place so the import succeeds; anything that then touches a placeholder fails loudly.
torch, numpy, einops and psutil are really used and are never stubbed.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# packages imported at module level by comfy.sd & co. but unused on the benchmark's path
STUBBABLE = ("transformers", "tokenizers", "sentencepiece", "scipy", "torchsde", "PIL", "yaml",
             "tqdm", "torchvision", "safetensors")
REQUIRED = ("torch", "numpy", "einops", "psutil")


def comfy_path() -> Path:
    return Path(os.environ.get("COMFYUI_PATH") or ROOT / ".host" / "ComfyUI").resolve()


class _Placeholder(types.ModuleType):
    """Module stand-in: any attribute is another placeholder (classes, functions, submodules)."""

    def __init__(self, name):
        super().__init__(name)
        self.__path__ = []  # a package, so `from x.y import z` resolves through the finder below

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        sub = _Placeholder(f"{self.__name__}.{attr}")
        setattr(self, attr, sub)
        return sub

    def __call__(self, *a, **k):
        raise RuntimeError(f"{self.__name__} is a benchmark placeholder; install the real package to use it")

    def __mro_entries__(self, bases):
        return (object,)  # `class X(placeholder.Base)` in a module we import but never use


class _PlaceholderFinder:
    def __init__(self, roots):
        self.roots = set(roots)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.roots:
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return _Placeholder(spec.name)

    def exec_module(self, module):
        pass


def missing(names) -> list[str]:
    return [n for n in names if importlib.util.find_spec(n) is None]


def import_comfy(device: str = "cpu", stub_missing: bool = False, extra_args=(), as_main: bool = False) -> dict:
    """Import comfy in CPU or GPU mode; returns {"comfy": path, "stubbed": [...]}. as_main: start ComfyUI
    as its own main.py does (imported, so no server starts): its device set-up, cuda-malloc and, on 0.33
    and later, DynamicVRAM, whatever this version's main.py does, rather than the minimal set-up below."""
    lacking = missing(REQUIRED)
    if lacking:
        raise SystemExit(f"missing required packages: {', '.join(lacking)} (see bench/README.md for wheels)")
    stubbed = missing(STUBBABLE)
    # DRAGNOISE_BENCH_STUB=a,b: stub these even if installed (to test a bare GPU box's path)
    forced = [n for n in os.environ.get("DRAGNOISE_BENCH_STUB", "").split(",") if n]
    if forced:
        stubbed = sorted(set(stubbed) | set(forced))
        stub_missing = True
    if stubbed:
        if not stub_missing:
            raise SystemExit(f"ComfyUI's imports need {', '.join(stubbed)}; install them or pass --stub-missing")
        sys.meta_path.insert(0, _PlaceholderFinder(stubbed))
    path = comfy_path()
    if not (path / "comfy").is_dir():
        raise SystemExit(f"ComfyUI not found at {path}; set COMFYUI_PATH")
    for p in (str(path), str(ROOT), str(ROOT / "tests")):
        if p not in sys.path:
            sys.path.append(p)
    argv = sys.argv
    sys.argv = [argv[0]] + (["--cpu"] if device == "cpu" else []) + list(extra_args)
    try:
        if as_main:  # ComfyUI's top-level modules (nodes, main) before any of the same name
            sys.path.insert(0, str(path))
            sys.argv[0] = str(path / "main.py")
            import main  # noqa: F401
        import comfy.options
        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401  (parses the argv above)
        import comfy.model_management  # noqa: F401
        import comfy.sd  # noqa: F401
        import comfy.samplers  # noqa: F401
    finally:
        sys.argv = argv
    return {"comfy": str(path), "stubbed": stubbed}
