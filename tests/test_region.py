"""The editable region painted in the point editor, through a real ComfyUI: the Points node's MASK
output is the engine's raster of the strokes (all ones when nothing is painted), bad regions get
named errors and the server keeps serving, and the toy scene the editor shows before any Run is the
node's own image pixel for pixel."""
import io
import json

import numpy as np
import pytest

import graphs
from comfy_server import error_of
from dragnoise import parse_points

N = graphs.SIZE
PAIRS = [{"handle": [40, 64], "target": [70, 64]}]
STROKES = [{"erase": False, "radius": 12, "points": [[30, 64], [60, 60], [90, 64]]},
           {"erase": True, "radius": 4, "points": [[60, 50]]}]


def mask_prompt(points: str) -> dict:
    """Load Image -> Points; its MASK shown by the core MaskToImage -> Preview Image."""
    return {
        "image": {"class_type": "LoadImage", "inputs": {"image": graphs.IMAGE}},
        "points": {"class_type": "DragNoisePoints", "inputs": {"points": points, "image": ["image", 0]}},
        "as_image": {"class_type": "MaskToImage", "inputs": {"mask": ["points", 1]}},
        "show": {"class_type": "PreviewImage", "inputs": {"images": ["as_image", 0]}},
    }


def png(data: bytes) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_points_mask_output_is_the_painted_region(server):
    text = json.dumps({"pairs": PAIRS, "region": {"size": [N, N], "strokes": STROKES}})
    entry = server.run(mask_prompt(text))
    got = png(server.image(entry, "show"))[..., 0] > 127
    want = parse_points(text).region.rasterize()[0].numpy() > 0.5
    assert 400 < want.sum() < N * N / 2 and not want[50, 60]  # painted, with the erased hole
    assert np.array_equal(got, want)
    # nothing painted: everything may change
    entry = server.run(mask_prompt(json.dumps(PAIRS)))
    assert (png(server.image(entry, "show")) == 255).all()


@pytest.mark.parametrize("region, words", [
    ({"size": [64, 64], "strokes": STROKES}, "painted on a 64x64 image, but the image is 128x128"),
    ({"size": [N, N], "strokes": [{"radius": 6, "points": [[100, 20]]}]}, "points[0].handle (40, 64) is outside the painted region"),
    ({"size": [N, N], "strokes": [{"radius": 6}]}, "points.region.strokes[0] must be an object"),
])
def test_bad_regions_are_named_and_the_server_keeps_serving(server, region, words):
    code, body = server.queue(mask_prompt(json.dumps({"pairs": PAIRS, "region": region})))
    if code != 200:  # caught by validation (the text alone is wrong)
        assert words in json.dumps(body), body
    else:
        entry = server.wait(body["prompt_id"])
        assert entry["status"]["status_str"] == "error"
        assert words in error_of(entry), error_of(entry)
    server.run(mask_prompt(json.dumps(PAIRS)))  # still serving


def test_the_editor_preview_of_a_toy_scene_is_the_nodes_image(server):
    """GET /dragnoise/toy_scene (what the editor shows before a Run) against the Points node's own
    image of the same scene after a Run."""
    prompt = {"scene": {"class_type": "DragNoiseToyScene", "inputs": {"scene": 11, "size": 192}},
              "points": {"class_type": "DragNoisePoints", "inputs": {"points": "[]", "image": ["scene", 0]}}}
    entry = server.run(prompt)
    info = entry["outputs"]["points"]["dragnoise_image"][0]
    ran = png(server.get(f"/view?filename={info['filename']}&subfolder={info['subfolder']}&type={info['type']}"))
    shown = png(server.get("/dragnoise/toy_scene?scene=11&size=192"))
    assert ran.shape == (192, 192, 3) and np.array_equal(shown, ran)
    import urllib.error
    for bad in ("scene=x&size=192", "scene=11&size=9999", "scene=11"):
        with pytest.raises(urllib.error.HTTPError) as e:
            server.get(f"/dragnoise/toy_scene?{bad}")
        assert e.value.code == 400
