"""DragNoise for ComfyUI: point-based drag editing by diffusion semantic propagation."""
import sys

WEB_DIRECTORY = "./web"

# Load the nodes only inside a running ComfyUI, which has set up its devices by
# the time custom nodes load; elsewhere (pytest importing this package) only
# the torch-only engine in dragnoise/ is wanted.
if "comfy.model_management" in sys.modules:
    from .nodes import DragNoiseExtension

    async def comfy_entrypoint():
        return DragNoiseExtension()
