"""Handle -> target pairs, from the canvas widget or a plain JSON string."""
from comfy_api.latest import io, ui

from ..dragnoise import PointsError, parse_points
from .bridge import PointsType

UI_KEY = "dragnoise_image"  # read by web/dragnoise_points.js


class DragNoisePoints(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="DragNoisePoints",
            display_name="DragNoise Points",
            category="DragNoise",
            description='Handle/target pairs in image pixels: [{"handle": [x, y], "target": [x, y]}, ...]. '
                        "Click on the canvas to place them, or send the JSON through the API.",
            inputs=[
                io.String.Input("points", default="[]", multiline=False,
                                tooltip='JSON list of {"handle": [x, y], "target": [x, y]} in image pixels.'),
                io.Image.Input("image", optional=True, tooltip="The image being edited: shown in the editor, bounds-checked."),
            ],
            outputs=[PointsType.Output("drag_points", display_name="drag_points")],
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
        if image is None:
            return io.NodeOutput(parsed)
        parsed.validate_for(image.shape[2], image.shape[1])
        # The image goes to the editor under our own key: under "images" the classic renderer would
        # also draw its own preview below the editor and squeeze it.
        saved = ui.PreviewImage(image[:1], cls=cls).as_dict()["images"]
        return io.NodeOutput(parsed, ui={UI_KEY: saved})
