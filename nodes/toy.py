"""Demo/testing nodes: a tiny trained model (no SD weights needed) and seeded toy scenes to drag."""
import numpy as np
import torch
from comfy_api.latest import io

from ..dragnoise_toy import model as toy_model
from ..dragnoise_toy.data import random_scene
from .bridge import PREVIEW_VAE

CATEGORY = "DragNoise/demo (testing)"


class DragNoiseToyModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DragNoiseToyModelLoader",
            display_name="DragNoise Toy Model Loader",
            category=CATEGORY,
            description="A tiny SD1.5-family UNet and a TAESD VAE trained on flat coloured shapes (256 px), with "
                        "the constant conditioning they were trained with: runs the whole drag pipeline anywhere, "
                        "no SD weights. A drag moves the shape most of the way (81% of the drag on average on 60 "
                        "measured cases, 35% of them within a quarter of it; bench/RESULTS.md), though shapes may "
                        "stop short, change form or colour, or fade; it needs its own settings: Optimize r1 24, lr "
                        "0.07 with 150 iterations, inversion to step 30 of 50 (see dragnoise_toy_demo.json). Use an "
                        "SD1.5 checkpoint to see real drags.",
            inputs=[],
            outputs=[io.Model.Output("model", display_name="model"), io.Vae.Output("vae", display_name="vae"),
                     io.Conditioning.Output("positive", display_name="positive", tooltip="The model's only conditioning; wire it into "
                                            "positive and negative (cfg 1.0).")],
        )

    @classmethod
    def execute(cls) -> io.NodeOutput:
        model, vae = toy_model.load_unet_patcher(), toy_model.load_vae()
        model.model_options[PREVIEW_VAE] = vae  # the optimizer's x0 preview decodes with it
        return io.NodeOutput(model, vae, toy_model.positive_conditioning())


class DragNoiseToyScene(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DragNoiseToyScene",
            display_name="DragNoise Toy Scene",
            category=CATEGORY,
            description="A seeded image of 1-3 flat shapes on a flat background, like the toy model's training "
                        "data (for the toy model, which runs the pipeline and moves shapes most of the way).",
            inputs=[io.Int.Input("scene", default=11, min=0, max=2 ** 31 - 1, tooltip="Seed of the scene."),
                    io.Int.Input("size", default=toy_model.SIZE, min=64, max=512, step=64)],
            outputs=[io.Image.Output("image", display_name="image")],
        )

    @classmethod
    def execute(cls, scene, size) -> io.NodeOutput:
        img = random_scene(np.random.default_rng(scene), size).render()
        return io.NodeOutput(torch.from_numpy(img)[None])


def scene_png(scene: int, size: int) -> bytes:
    """The toy scene exactly as DragNoiseToyScene outputs it, as PNG bytes."""
    import io as bytes_io
    from PIL import Image
    buf = bytes_io.BytesIO()
    img = random_scene(np.random.default_rng(scene), size).render()
    Image.fromarray(np.clip(255.0 * img, 0, 255).astype(np.uint8)).save(buf, "PNG")  # as Save/Preview Image write it
    return buf.getvalue()


def _register_scene_route():
    """GET /dragnoise/toy_scene?scene=11&size=256: the point editor shows a linked toy scene before any
    Run, as it shows a Load Image's file (/view). The scene is a pure function of the node's two
    settings, so rendering it here is the node's own output without queueing a prompt."""
    import sys
    server = getattr(getattr(sys.modules.get("server"), "PromptServer", None), "instance", None)
    if server is None:  # ComfyUI used as a library: no one to serve
        return
    from aiohttp import web

    @server.routes.get("/dragnoise/toy_scene")
    async def toy_scene(request):
        try:
            scene, size = int(request.query["scene"]), int(request.query["size"])
        except (KeyError, ValueError):
            return web.Response(status=400, text="toy_scene needs integer scene and size")
        if not (0 <= scene <= 2 ** 31 - 1 and 64 <= size <= 512):  # the node's own bounds
            return web.Response(status=400, text="toy_scene: scene must be in [0, 2^31-1], size in [64, 512]")
        return web.Response(body=scene_png(scene, size), content_type="image/png",
                            headers={"Cache-Control": "max-age=3600"})


_register_scene_route()
