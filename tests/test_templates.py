import pytest

from medground.errors import MedgroundError
from medground.geometry import Frame, map_boxes
from medground.parsing import parse_completion
from medground.templates import TEMPLATES, get_template

PUBLISHED_R1 = (
    "Please provide the bounding box coordinate of the region this sentence describes: {q}. First output the "
    "thinking process in <think> </think> tags and then output the final answer in <answer> </answer> tags. "
    "Output the final answer in JSON format."
)


def test_r1_is_the_published_text_verbatim():
    assert get_template("r1").render("left pleural effusion.", "pixels", 10, 10, state_frame=False) == PUBLISHED_R1.format(
        q="left pleural effusion"
    )


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_every_template_states_the_frame(name):
    t = get_template(name)
    assert "644x448 image" in t.render("q", Frame.parse("qwen2.5-vl"), 640, 448)
    assert "between 0 and 1000" in t.render("q", "norm1000", 640, 448)
    assert "between 0 and 1" in t.render("q", "norm1", 640, 448)


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_teacher_completion_parses_back(name):
    t = get_template(name)
    size = (700, 1000)
    frame = Frame.parse("qwen2.5-vl")
    box = map_boxes([[100, 200, 300, 420]], size, "pixels", frame)[0]
    points = [[150, 250], [250, 400]]
    text = t.teacher("right upper zone nodule", box, points, context=[("heart", [300, 500, 600, 800])])
    p = parse_completion(text)
    assert p.box == [round(v) for v in box]
    assert p.well_formed == t.think and p.has_answer
    if t.answer_kind == "medreasoner":
        assert p.points == [points]
    if name == "chain_of_box":
        assert p.think_boxes[-1] == p.box and len(p.think_boxes) == 2


def test_unknown_template():
    with pytest.raises(MedgroundError, match="unknown template"):
        get_template("nope")
