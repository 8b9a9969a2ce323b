"""MODEL patch for diffusion semantic propagation of the optimized bottleneck."""
import torch
from comfy_api.latest import io

from ..dragnoise import KeepOutside, PropagationWindow
from .bridge import BottleneckType, DragNoiseInputError, require_unet, with_wrappers


class DragNoisePropagation(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DragNoisePropagation",
            display_name="DragNoise Propagation Patch",
            category="DragNoise",
            description="Patches a clone of MODEL to use the optimized bottleneck from the editing step down to t'.",
            inputs=[
                io.Model.Input("model"),
                BottleneckType.Input("bottleneck"),
                io.Int.Input("end_step", default=0, min=0, max=1000,
                             tooltip="t': the last end_step denoising steps run the UNet unchanged to refine detail "
                                     "(official default 0 = inject at every step; its UI suggests 10)."),
                io.Boolean.Input("keep_outside_mask", default=True, optional=True,
                                 tooltip="With a mask painted for Optimize: outside it the image stays as it was "
                                         "(the sampler follows the inversion there). Off: the official behaviour, "
                                         "where the whole image is re-synthesized. No effect without a mask."),
            ],
            outputs=[io.Model.Output("patched_model", display_name="model",
                                          tooltip="A patched clone: sample the inverted latent with it."),
                     io.Mask.Output("region", display_name="region",
                                    tooltip="Where the image may change (1), at the image's size: the mask the "
                                            "propagation kept outside. All ones when nothing is kept (no mask, or "
                                            "keep_outside_mask off). Feather it and give it to Image Composite "
                                            "Masked (input as destination, the decoded drag as source) so the "
                                            "saved image is the input's own pixels outside it."),
                     ],
        )

    @classmethod
    def execute(cls, model, bottleneck, end_step, keep_outside_mask=True) -> io.NodeOutput:
        require_unet(model)  # a DiT would never call the bottleneck patch: the drag would silently vanish
        steps, inverted = bottleneck["steps"], bottleneck["inversion_steps"]
        if end_step >= inverted:
            raise DragNoiseInputError(f"end_step ({end_step}) must be below the inverted steps ({inverted}), "
                                      "or the bottleneck would never be injected")
        schedule = bottleneck["schedule"]
        hint = (f"sample the inverted latent with KSampler (Advanced): steps {steps}, scheduler ddim_uniform, "
                f"start_at_step {steps - inverted}, add_noise disable")
        window = PropagationWindow(bottleneck["bottleneck"], schedule[steps - inverted], schedule[steps - 1 - end_step],
                                   how_to_sample=hint)
        keep = None
        region = torch.ones((1, *bottleneck["image_hw"]))  # nothing kept: the whole image is the drag's
        if keep_outside_mask and bottleneck.get("editable") is not None and bottleneck.get("trajectory"):
            keep = (KeepOutside.KEY, KeepOutside(bottleneck["editable"], bottleneck["trajectory"]).wrapper)
            region = bottleneck["region"]
        m = with_wrappers(model, diffusion_model=(PropagationWindow.KEY, window.wrapper), apply_model=keep)
        m.set_model_output_block_patch(window.output_block_patch)
        return io.NodeOutput(m, region)
