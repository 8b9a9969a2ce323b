from typing_extensions import override
from comfy_api.latest import ComfyExtension, io

from .inversion import DragNoiseInversion
from .optimize import DragNoiseOptimize
from .points import DragNoisePoints
from .propagation import DragNoisePropagation
from .toy import DragNoiseToyModelLoader, DragNoiseToyScene

NODES = [DragNoiseInversion, DragNoisePoints, DragNoiseOptimize, DragNoisePropagation, DragNoiseToyModelLoader,
         DragNoiseToyScene]


class DragNoiseExtension(ComfyExtension):
    @override
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES
