"""ComfyUI used as a library by a script: the pack's nodes called in a fresh interpreter, no PromptServer.

A fresh interpreter because pytest's own process may have loaded ComfyUI modules a server run needs.
The script body follows PREAMBLE, which sets ComfyUI up as a script does (--cpu) and imports the pack
as `dragnoise_pack`; the body prints one JSON line last, which run() returns.
"""
import json
import os
import subprocess
import sys

from conftest import COMFY, ROOT

PREAMBLE = r"""
import gc, importlib.util, json, sys
comfy_dir, pack = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfy_dir)
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options
comfy.options.enable_args_parsing()
import comfy.cli_args, comfy.model_management as mm  # noqa: F401  (the devices, as a script sets them up)
spec = importlib.util.spec_from_file_location("dragnoise_pack", pack + "/__init__.py", submodule_search_locations=[pack])
mod = importlib.util.module_from_spec(spec); sys.modules["dragnoise_pack"] = mod; spec.loader.exec_module(mod)
"""


def run(body: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PREAMBLE + body, str(COMFY), str(ROOT)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=""), cwd=str(COMFY), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
