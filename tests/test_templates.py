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


def test_unknown_template_gets_a_close_match():
    with pytest.raises(MedgroundError, match=r"unknown template 'chain-of-box'; did you mean chain_of_box\?"):
        get_template("chain-of-box")
    with pytest.raises(MedgroundError, match=r"unknown template 'qwen'; choose one of chain_of_box, medreasoner, "):
        get_template("qwen")


def test_templates_is_a_read_only_view_of_the_registry():
    from medground.templates import REGISTRY

    assert list(TEMPLATES) == REGISTRY.names() == ["chain_of_box", "medreasoner", "medreasoner_nothink", "r1", "r1_open"]
    assert all(TEMPLATES[name] is get_template(name) and TEMPLATES[name].name == name for name in TEMPLATES)
    assert REGISTRY.entry("medreasoner").description == TEMPLATES["medreasoner"].description
    assert "r1" in TEMPLATES and "nope" not in TEMPLATES and TEMPLATES.get("nope") is None
    with pytest.raises(KeyError):
        TEMPLATES["nope"]
    with pytest.raises(TypeError):
        TEMPLATES["mine"] = TEMPLATES["r1"]  # registering goes through medground.templates.register
    assert get_template(" R1 ") is TEMPLATES["r1"]  # names are matched case-insensitively


def test_a_registered_template_is_usable_everywhere_by_name(tmp_path):
    """A fresh interpreter: one register() call and the template is listed, rendered by
    the TRL dataset builder, and its name is suggested on a typo."""
    import subprocess
    import sys

    script = """
from medground.templates import R1_QUESTION, TEMPLATES, Template, get_template, register
from medground.data.schema import Sample
from medground.data.trl_dataset import prompt_messages
register(Template("short", R1_QUESTION, " Answer with the box only.", "one-line answer", think=False))
print(sorted(TEMPLATES))
s = Sample(id="a", image="x.png", query="left effusion", boxes=[[1, 2, 3, 4]], width=10, height=10)
print(prompt_messages("short", s, "norm1000")[-1]["content"][1]["text"])
try:
    get_template("shrt")
except Exception as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300).stdout
    assert "['chain_of_box', 'medreasoner', 'medreasoner_nothink', 'r1', 'r1_open', 'short']" in out
    assert "describes: left effusion. Give coordinates as" in out and "Answer with the box only." in out
    assert "unknown template 'shrt'; did you mean short?" in out


@pytest.mark.parametrize("name", list(TEMPLATES))
def test_teacher_answers_for_no_target_and_for_several_parse_back(name):
    """Every template writes an explicit empty answer for a negative and every box of a
    multi-target phrase, in order; the parser reads both back."""
    t = get_template(name)
    boxes = [[10, 20, 30, 40], [50, 60, 70, 80], [5, 6, 7, 8]]
    for targets in (boxes, boxes[:2]):
        p = parse_completion(t.teacher("bilateral pleural effusions", targets))
        assert p.boxes == targets and not p.empty and p.has_answer and p.well_formed == t.think
    none = parse_completion(t.teacher("left pneumothorax", None))
    assert none.boxes == [] and none.empty and none.has_answer and none.well_formed == t.think
    assert parse_completion(t.teacher("left pneumothorax", [])).empty
    assert t.answer_boxes([]) == t.empty_answer and t.empty_answer in ("[]", '{"bbox": null}')


def test_one_target_answers_are_the_single_box_answers():
    for name in TEMPLATES:
        t = get_template(name)
        assert t.answer_boxes([[1, 2, 3, 4]], [[1, 2], [3, 4]]) == t.answer_json([1, 2, 3, 4], [[1, 2], [3, 4]])
        assert t.teacher("q", [1, 2, 3, 4]) == t.teacher("q", [[1, 2, 3, 4]])
    assert get_template("r1_open").answer_boxes([[1, 2, 3, 4], [5, 6, 7, 8]]) == "[[1, 2, 3, 4], [5, 6, 7, 8]]"
    assert get_template("chain_of_box").teacher("the masses", [[1, 2, 3, 4], [5, 6, 7, 8]]) == (
        '<think>The masses are at [1, 2, 3, 4] and [5, 6, 7, 8].</think>'
        '<answer>[{"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [5, 6, 7, 8]}]</answer>')


def test_r1_open_asks_for_every_region_and_allows_an_empty_answer():
    text = get_template("r1_open").render("the masses", "pixels", 100, 100)
    assert "every region this sentence describes: the masses." in text and "or [] if the image does not show it" in text
