"""Handle -> target pairs, from the canvas widget or a plain JSON string."""
from comfy_api.latest import io, ui

from ..dragnoise import PointsError, parse_points
from .bridge import PointsType


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
            outputs=[PointsType.Output("drag_points")],
            hidden=[io.Hidden.prompt, io.Hidden.extra_pnginfo],
        )

    @classmethod
    def validate_inputs(cls, points=None):
        if points is None:  # from a link: parsed when the node runs
            return True
        try:
            parse_points(points)
        except PointsError as e:
            return str(e)
        return True

    @classmethod
    def execute(cls, points, image=None) -> io.NodeOutput:
        parsed = parse_points(points)
        if image is None:
            return io.NodeOutput(parsed)
        parsed.validate_for(image.shape[2], image.shape[1])
        # the image goes back to the widget so the user sees what they are dragging
        return io.NodeOutput(parsed, ui=ui.PreviewImage(image[:1], cls=cls))
