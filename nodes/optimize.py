"""Bottleneck optimization at the editing step (semantic alignment + handle tracking)."""
from comfy_api.latest import io

from ..dragnoise import DragConfig, feathered, optimize_bottleneck
from ..dragnoise.points import EMPTY
from .bridge import (FATAL, BottleneckType, DragNoiseInputError, InversionType, LiveProgress, PointsType, capture_mode,
                     kept_region, previewer_for, range_problem, record_edit_step, refuse_if_too_large, releasing,
                     require_unet, single_latent)

LATENT_SCALE = 8  # image pixels per latent cell for the SD family
# Live view defaults, measured with scripts/progress_cost.py (bench/README.md): a trail message costs ~0 UNet
# forwards (the loop syncs every step anyway); an x0 preview ~0.17 (SD1.5) to 0.44 (toy) forwards,
# so every 20 iterations it stays under 5% of the loop.
TRAIL_EVERY, PREVIEW_EVERY = 2, 20


class DragNoiseOptimize(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        d = DragConfig()
        return io.Schema(
            node_id="DragNoiseOptimize",
            display_name="DragNoise Optimize Bottleneck",
            category="DragNoise",
            description="Optimizes the UNet bottleneck at the editing step so handle features move to their targets.",
            inputs=[
                io.Model.Input("model"),
                io.Conditioning.Input("positive"),
                InversionType.Input("inversion"),
                PointsType.Input("points"),
                io.Mask.Input("mask", optional=True, tooltip="Editable region (1 = may change); outside it the bottleneck is "
                              "kept. The region painted in the Points editor is added to it (union)."),
                io.Int.Input("iterations", default=d.iterations, min=1, max=1000, tooltip="Official UI 60, DragBench 80."),
                io.Float.Input("lr", default=d.lr, min=1e-5, max=1.0, step=0.001, tooltip="Adam learning rate (official UI 0.01, DragBench 0.02)."),
                io.Float.Input("lam", default=d.lam, min=0.0, max=10.0, step=0.01, tooltip="Mask loss weight lambda (official UI 0.1, DragBench 0.2)."),
                io.Int.Input("r1", default=d.r1, min=0, max=32, tooltip="Alignment patch radius (official 1)."),
                io.Int.Input("r2", default=d.r2, min=1, max=16, tooltip="Tracking search radius (official 3)."),
                # optional: API prompts written before these inputs existed still validate
                io.Int.Input("trail_every", default=TRAIL_EVERY, min=0, max=1000, optional=True,
                             tooltip="Every N iterations the point editor draws the tracked handles and the loss (0 = off)."),
                io.Int.Input("preview_every", default=PREVIEW_EVERY, min=0, max=1000, optional=True,
                             tooltip="Every N iterations this node previews the edit: the x0 estimate of the "
                                     "current bottleneck (0 = off; each costs a fraction of a UNet forward)."),
                io.Boolean.Input("low_memory", default=False, optional=True,
                                 tooltip="Sample handle patches from the decoder feature at its own size instead of "
                                         "upsampling it to half the image every step (official). Less memory at "
                                         "large images. Not the official result: close at lr 0.01 only; at lr 0.1 "
                                         "the tracked handles part from the official ones after 4-7 iterations "
                                         "(bottleneck change cosine 0.86; 0.54 at lr 0.3)."),
                io.Int.Input("band", default=0, min=0, max=4096, optional=True,
                             tooltip="With no mask painted: the editable region is every pixel within this many "
                                     "pixels of a handle -> target path (about the dragged object's size); the rest "
                                     "is kept as with a mask. 0 = off: the whole image may change (official)."),
            ],
            outputs=[BottleneckType.Output("bottleneck", display_name="bottleneck")],
        )

    @staticmethod
    def check(lr, lam):
        return range_problem(lr=(lr, 1e-5, 1.0), lam=(lam, 0.0, 10.0))

    @classmethod
    def validate_inputs(cls, lr=None, lam=None):  # no **kwargs: that would skip ComfyUI's checks of the rest
        return cls.check(lr, lam) or True

    @classmethod
    def execute(cls, model, positive, inversion, points, iterations, lr, lam, r1, r2, trail_every=TRAIL_EVERY,
                preview_every=PREVIEW_EVERY, mask=None, low_memory=False, band=0) -> io.NodeOutput:
        problem = cls.check(lr, lam)  # again: linked values skip validation
        if problem:
            raise DragNoiseInputError(problem)
        require_unet(model)
        if not len(points):
            raise DragNoiseInputError(f"{EMPTY} in the DragNoise Points editor (its image appears there after a run)")
        latent = single_latent({"samples": inversion["latent"]}, "inversion", model)
        lh, lw = latent.shape[-2:]
        height, width = lh * LATENT_SCALE, lw * LATENT_SCALE
        points.validate_for(width, height)
        # supervision grid: half the image resolution, as in the official code
        handles, targets = points.scaled(0.5, 0.5)
        grid = (height // 2, width // 2)
        config = DragConfig(iterations=iterations, lr=lr, lam=lam, r1=r1, r2=r2)
        previewer = previewer_for(model)
        capture = capture_mode(model.load_device)  # the count and the loop must agree on it
        mask = points.editable(mask, width, height)  # the editor's painted region united with a linked mask
        kept = kept_region(mask, (height, width), (lh, lw))  # named errors for a bad mask; None: nothing painted
        if kept is None and band > 0:  # nothing painted: the band around the drag paths is the editable region
            mask = points.band(width, height, band)
            kept = kept_region(mask, (height, width), (lh, lw))

        def work(replay, x0):
            b = replay.bottleneck
            keep = kept_region(mask, (height, width), tuple(b.shape[-2:]))
            # the edit so far: the rest of the UNet from the decoder feature, its x0 estimate, previewed
            preview = (lambda info: previewer.decode_latent_to_preview_image("JPEG", x0(replay.finish(info["feature"]))))
            live = LiveProgress(iterations, trail_every, preview_every, handles, targets, 2.0,
                                preview if previewer else None)
            r = optimize_bottleneck(replay.decode, b, handles, targets, config, None if keep is None else keep.to(b.device),
                                    live, grid=grid, low_memory=low_memory, capture=capture, fatal=FATAL)
            live.send(r.iterations, iterations, r.handles, r.losses[-1] if r.losses else None, done=True)  # final
            return r

        with releasing():
            r = record_edit_step(model, positive, latent, inversion["sigma"], work,
                                 check=lambda replay: refuse_if_too_large(model, replay, grid, low_memory,
                                                                          capture is not None))
        bottleneck = {"bottleneck": r.bottleneck.cpu(), "sigma": inversion["sigma"], "schedule": inversion["schedule"],
                      "steps": inversion["steps"], "inversion_steps": inversion["inversion_steps"],
                      "iterations": r.iterations, "reached": r.reached, "handles": r.handles,
                      # for keeping the rest of the image during propagation (the Propagation Patch's switch)
                      "editable": None if kept is None else feathered(1 - kept),
                      "trajectory": inversion.get("trajectory"),
                      # the same region in pixels (1 = may change; None: all may), for the Patch's `region`
                      "region": None if kept is None else (mask if mask.ndim == 3 else mask[None])[:1].gt(0.5).float().cpu(),
                      "image_hw": (height, width)}
        return io.NodeOutput(bottleneck)
