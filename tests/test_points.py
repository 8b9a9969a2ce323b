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
