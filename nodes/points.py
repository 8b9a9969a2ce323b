"""Handle -> target pairs and the editable region, from the canvas widget or a plain JSON string."""
import torch
from comfy_api.latest import io, ui

from ..dragnoise import PointsError, parse_points
from .bridge import PointsType

UI_KEY = "dragnoise_image"  # read by web/dragnoise_points.js
UNKNOWN_SIZE = 64  # the MASK's side when neither an image nor a region gives one


class DragNoisePoints(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DragNoisePoints",
            display_name="DragNoise Points",
            category="DragNoise",
            description='Handle/target pairs in image pixels: [{"handle": [x, y], "target": [x, y]}, ...], and '
                        "optionally the editable region painted with the editor's brush "
                        '({"pairs": [...], "region": {...}}, see the node docs). Click on the canvas to place '
                        "points, or send the JSON through the API.",
            inputs=[
                io.String.Input("points", default="[]", multiline=False,
                                tooltip='JSON list of {"handle": [x, y], "target": [x, y]} in image pixels, or '
                                        '{"pairs": [...], "region": {"size": [w, h], "strokes": [...]}}.'),
                io.Image.Input("image", optional=True, tooltip="The image being edited: shown in the editor, bounds-checked."),
            ],
            outputs=[PointsType.Output("drag_points", display_name="drag_points"),
                     io.Mask.Output("mask", display_name="mask",
                                    tooltip="The painted editable region at the image's size (1 = may change); all "
                                            "ones when nothing is painted. Into Optimize's mask, and for keeping "
                                            "the rest of the image.")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
            # an output node runs (or replays its cached UI output) on every Run: a fully cached run
            # in a fresh tab still sends the editor its image
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, points=None):
        if points is None:  # from a link: parsed when the node runs
            return True
        try:
            parse_points(points, allow_empty=True)  # the optimizer asks for pairs; see execute
        except PointsError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, points, image=None) -> io.NodeOutput:
        # [] passes here (Optimize refuses it), so a first run with no pairs still shows the image
        parsed = parse_points(points, allow_empty=True)
        if image is None and not parsed.region:  # no size known here: Optimize checks the points against its latent
            return io.NodeOutput(parsed, torch.ones(1, UNKNOWN_SIZE, UNKNOWN_SIZE))
        w, h = parsed.region.size if image is None else (image.shape[2], image.shape[1])
        parsed.validate_for(w, h)  # the region's size and handles: checked here, against the image
        painted = parsed.region_mask(w, h)
        mask = torch.ones(1, h, w) if painted is None else painted
        if image is None:
            return io.NodeOutput(parsed, mask)
        # The image goes to the editor under our own key: under "images" the classic renderer would
        # also draw its own preview below the editor and squeeze it.
        saved = ui.PreviewImage(image[:1], cls=cls).as_dict()["images"]
        return io.NodeOutput(parsed, mask, ui={UI_KEY: saved})
