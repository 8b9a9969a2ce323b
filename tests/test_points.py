import json
import math

import pytest

from dragnoise import PointsError, parse_points


def test_parses_pairs_in_image_pixels():
    p = parse_points('[{"handle": [10, 20], "target": [30.5, 40]}, {"handle": [1, 2], "target": [3, 4]}]')
    assert p.handles == ((10.0, 20.0), (1.0, 2.0))
    assert p.targets == ((30.5, 40.0), (3.0, 4.0))
    assert parse_points(p.to_json()) == p


def test_scaling_rounds_to_supervision_grid():
    p = parse_points('[{"handle": [11, 20], "target": [31, 41]}]')
    assert p.scaled(0.5, 0.5) == ([(6.0, 10.0)], [(16.0, 20.0)])  # Python rounds half to even


@pytest.mark.parametrize("text, words", [
    ("not json", "not valid JSON"),
    ("[]", "empty"),
    ('{"a": 1}', "JSON list"),
    ('[{"handle": [1, 2]}]', '"handle" and "target"'),
    ('[{"handle": [1, 2], "target": [1, 2]}]', "zero-length"),
    ('[{"handle": [1], "target": [1, 2]}]', "points[0].handle must be a pair"),
    ('[{"handle": ["a", 2], "target": [1, 2]}]', "must hold numbers"),
    ('[{"handle": [NaN, 2], "target": [1, 2]}]', "non-finite"),
    ('[{"handle": [Infinity, 2], "target": [1, 2]}]', "non-finite"),
    ('[{"handle": [1, 2], "target": [5, 5]}, {"handle": [1, 2], "target": [9, 9]}]', "repeats the handle"),
    (json.dumps([{"handle": [i, 0], "target": [i, 5]} for i in range(5000)]), "at most"),
])
def test_bad_points_name_the_problem(text, words):
    with pytest.raises(PointsError, match=words.replace("[", r"\[").replace("(", r"\(")):
        parse_points(text)


def test_empty_list_only_where_allowed():
    # the points node runs with no pairs (the editor gets its image); the optimizer then asks for them
    assert len(parse_points("[]", allow_empty=True)) == 0
    with pytest.raises(PointsError, match="empty"):
        parse_points("[]")


def test_points_outside_image_are_named():
    p = parse_points('[{"handle": [10, 20], "target": [300, 40]}]')
    p.validate_for(512, 512)
    with pytest.raises(PointsError, match=r"points\[0\]\.target \(300, 40\) is outside the 256x256 image"):
        p.validate_for(256, 256)
    assert math.isclose(p.targets[0][0], 300)


# ---- the editable region painted in the editor ({"pairs": [...], "region": {...}}) ----

def with_region(strokes, size=(64, 48), pairs=None):
    return json.dumps({"pairs": pairs if pairs is not None else [{"handle": [10, 10], "target": [20, 10]}],
                       "region": {"size": list(size), "strokes": strokes}})


def test_region_strokes_paint_and_erase_in_order():
    import torch
    p = parse_points(with_region([{"erase": False, "radius": 3, "points": [[10, 10], [30, 10]]},
                                  {"erase": True, "radius": 1, "points": [[20, 10]]},
                                  {"radius": 2, "points": [[50, 40]]}]))  # erase defaults to false; a click is a disc
    m = p.region_mask(64, 48)
    assert m.shape == (1, 48, 64) and m.dtype == torch.float32
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(64.0), indexing="ij")
    t = ((xx - 10) / 20).clamp(0, 1)
    want = (xx - 10 - 20 * t) ** 2 + (yy - 10) ** 2 <= 9  # within 3 px of the segment
    want &= (xx - 20) ** 2 + (yy - 10) ** 2 > 1  # erased after
    want |= (xx - 50) ** 2 + (yy - 40) ** 2 <= 4
    assert torch.equal(m[0] > 0.5, want)
    assert parse_points(p.to_json()) == p  # the region round-trips


def test_plain_list_and_empty_region_mean_no_mask():
    assert parse_points('[{"handle": [1, 2], "target": [3, 4]}]').region_mask(8, 8) is None
    assert parse_points(with_region([])).region_mask(64, 48) is None
    erased = [{"radius": 4, "points": [[10, 10]]}, {"erase": True, "radius": 8, "points": [[10, 10]]}]
    assert parse_points(with_region(erased)).region_mask(64, 48) is None  # all erased: nothing painted


@pytest.mark.parametrize("region, words", [
    ([], "points.region must be an object"),
    ({"size": [64, 48]}, "points.region must be an object"),
    ({"size": [64], "strokes": []}, "points.region.size must be [width, height]"),
    ({"size": [64.5, 48], "strokes": []}, "points.region.size must be [width, height]"),
    ({"size": [64, 48], "strokes": {}}, "strokes must be a list"),
    ({"size": [64, 48], "strokes": [{"points": [[1, 2]]}]}, "points.region.strokes[0] must be an object"),
    ({"size": [64, 48], "strokes": [{"radius": 0, "points": [[1, 2]]}]}, "strokes[0].radius must be a number in"),
    ({"size": [64, 48], "strokes": [{"radius": "5", "points": [[1, 2]]}]}, "strokes[0].radius must be a number"),
    ({"size": [64, 48], "strokes": [{"erase": 1, "radius": 5, "points": [[1, 2]]}]}, "strokes[0].erase must be true or false"),
    ({"size": [64, 48], "strokes": [{"radius": 5, "points": []}]}, "strokes[0].points is empty"),
    ({"size": [64, 48], "strokes": [{"radius": 5, "points": [[1, 2], [3]]}]}, "strokes[0].points[1] must be a pair"),
    ({"size": [64, 48], "strokes": [{"radius": 5, "points": [[1, None]]}]}, "strokes[0].points[0] must hold numbers"),
    ({"size": [64, 48], "strokes": [{"radius": 5, "points": [[1, 2]]}] * 300}, "at most 256"),
    ({"size": [64, 48], "strokes": [{"radius": 5, "points": [[1, 2]] * 9000}]}, "at most 8192"),
])
def test_malformed_regions_name_the_problem(region, words):
    text = json.dumps({"pairs": [{"handle": [1, 2], "target": [3, 4]}], "region": region})
    with pytest.raises(PointsError, match=words.replace("[", r"\[").replace("(", r"\(")):
        parse_points(text)


def test_region_for_another_image_size_is_named():
    p = parse_points(with_region([{"radius": 8, "points": [[10, 10]]}]))
    with pytest.raises(PointsError, match="painted on a 64x48 image, but the image is 128x128"):
        p.validate_for(128, 128)


def test_region_that_leaves_a_handle_outside_is_named():
    pairs = [{"handle": [10, 10], "target": [20, 10]}, {"handle": [40, 30], "target": [45, 30]}]
    p = parse_points(with_region([{"radius": 6, "points": [[10, 10], [20, 10]]}], pairs=pairs))
    with pytest.raises(PointsError, match=r"points\[1\]\.handle \(40, 30\) is outside the painted region"):
        p.validate_for(64, 48)
    only_other = parse_points(with_region([{"radius": 6, "points": [[40, 30]]}], pairs=pairs[:1]))
    with pytest.raises(PointsError, match=r"points\[0\]\.handle \(10, 10\) is outside the painted region"):
        only_other.validate_for(64, 48)


def test_optimize_takes_the_union_of_the_painted_region_and_a_linked_mask():
    import torch
    p = parse_points(with_region([{"radius": 4, "points": [[10, 10]]}]))
    painted = p.region_mask(64, 48)
    linked = torch.zeros(1, 48, 64)
    linked[0, 30:40, 40:50] = 1
    assert torch.equal(p.editable(linked, 64, 48), torch.maximum(painted, linked))
    assert torch.equal(p.editable(None, 64, 48), painted)
    assert torch.equal(p.editable(painted.clone(), 64, 48), painted)  # its own MASK output wired in: the same
    # nothing painted: a linked mask as before, and all-ones (the MASK output with no region) is no mask
    plain = parse_points('[{"handle": [10, 10], "target": [20, 10]}]')
    assert plain.editable(linked, 64, 48) is linked
    assert plain.editable(torch.ones(1, 48, 64), 64, 48) is None
    assert p.editable(torch.ones(1, 48, 64), 64, 48) is not None
    with pytest.raises(PointsError, match="mask is 32x32 but the image is 64x48"):
        p.editable(torch.zeros(1, 32, 32).index_fill_(1, torch.tensor([3]), 1), 64, 48)
    # a mask made for another image is named even where it would change nothing (all ones), with or without
    # a painted region; an empty one (Load Image's 64x64 placeholder) is no mask at any size
    for points in (p, plain):
        with pytest.raises(PointsError, match="mask is 32x32 but the image is 64x48"):
            points.editable(torch.ones(1, 32, 32), 64, 48)
    assert plain.editable(torch.zeros(1, 32, 32), 64, 48) is None


def test_rasterizing_matches_the_distance_rule_on_random_strokes():
    """The row-span rasterizer against the rule itself (every pixel's distance to every segment)."""
    import random
    import torch
    rng = random.Random(3)
    strokes = [{"erase": rng.random() < 0.3, "radius": rng.choice([0.5, 1, 2.5, 7, 13]),
                "points": [[rng.uniform(-10, 74), rng.uniform(-10, 58)] for _ in range(rng.randint(1, 5))]}
               for _ in range(25)]
    strokes += [{"radius": 3, "points": [[5, 5], [5, 30]]}, {"radius": 3, "points": [[5, 40], [60, 40]]}]
    want = torch.zeros(48, 64, dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(48.0, dtype=torch.float64), torch.arange(64.0, dtype=torch.float64),
                            indexing="ij")
    for s in strokes:
        pts = s["points"] if len(s["points"]) > 1 else s["points"] * 2
        hit = torch.zeros_like(want)
        for (ax, ay), (bx, by) in zip(pts, pts[1:]):
            dx, dy = bx - ax, by - ay
            t = (((xx - ax) * dx + (yy - ay) * dy) / max(dx * dx + dy * dy, 1e-12)).clamp(0, 1)
            hit |= (xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2 <= s["radius"] ** 2 + 1e-9
        want = want & ~hit if s.get("erase") else want | hit
    got = parse_points(with_region(strokes)).region.rasterize()[0] > 0.5
    assert (got != want).sum() <= 3, (got != want).nonzero()  # at most a few pixels exactly on an edge


def test_the_largest_region_allowed_rasterizes_in_seconds():
    import time
    from dragnoise.points import MAX_STROKE_POINTS, MAX_STROKES
    # every stroke and point allowed, as long diagonal segments alternating paint and erase (each stroke
    # its own pass) on a 128 px image: 18 s on 2 cores shared by ~17 busy processes (load 17)
    n = MAX_STROKE_POINTS // MAX_STROKES
    strokes = [{"erase": i % 2 == 1, "radius": 12, "points": [[(k * 977) % 128, (k * 1231) % 128]
                                                               for k in range(n)]} for i in range(MAX_STROKES)]
    p = parse_points(with_region(strokes, size=(128, 128), pairs=[{"handle": [0, 0], "target": [5, 5]}]))
    t = time.perf_counter()
    p.region.rasterize()
    assert time.perf_counter() - t < 90
