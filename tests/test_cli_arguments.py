"""Bad arguments fail at once (issue 12, item 10): one line naming the argument, exit
status 2, before any model or segmenter loads — in every command that takes them."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

from medground.cli import main  # noqa: E402
from medground.data.phantom import generate_phantom_dataset  # noqa: E402
from medground.data.schema import read_jsonl  # noqa: E402


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("args")
    generate_phantom_dataset(root / "ph", n=2, seed=5, size=64, progress=False)
    (root / "folder").mkdir()
    (root / "afile").write_text("x\n")
    (root / "model").mkdir()  # never loaded: every case fails before
    image = read_jsonl(root / "ph" / "all.jsonl")[0].image
    return {"data": str(root / "ph" / "all.jsonl"), "dir": str(root / "ph"), "folder": str(root / "folder"),
            "file": str(root / "afile"), "model": str(root / "model"), "image": image, "tmp": str(root)}


@pytest.fixture(autouse=True)
def nothing_heavy_loads(monkeypatch):
    """A case that reached a model or a segmenter would fail with exit 1, not 2."""
    import medground.models.policy as policy
    import medground.models.segmenters as segmenters

    def refuse(*args, **kwargs):
        raise AssertionError("heavy work started before the arguments were checked")

    monkeypatch.setattr(policy, "load_policy", refuse)
    monkeypatch.setattr(segmenters, "get_segmenter", refuse)


PREDICT = ["predict", "--model", "{model}"]
ON_DATA = [*PREDICT, "--data", "{data}", "--out", "{tmp}/p.jsonl"]

CASES = [
    ([*ON_DATA, "--limit", "-1"], "--limit"),
    ([*ON_DATA, "--limit", "0"], "--limit"),
    ([*ON_DATA, "--batch-size", "0"], "--batch-size"),
    ([*ON_DATA, "--max-new-tokens", "0"], "--max-new-tokens"),
    ([*ON_DATA, "--min-pixels", "0"], "--min-pixels"),
    ([*ON_DATA, "--min-pixels", "5000", "--max-pixels", "4000"], "--min-pixels"),
    ([*ON_DATA, "--template", "nosuch"], "--template"),
    ([*ON_DATA, "--frame", "bogus"], "--frame"),
    ([*ON_DATA, "--segmenter", "nosuch"], "--segmenter"),
    ([*ON_DATA, "--device", "bogus"], "--device"),
    ([*PREDICT, "--data", "{data}", "--out", "{folder}"], "--out"),
    ([*PREDICT, "--data", "{data}", "--out", "{file}/p.jsonl"], "--out"),
    ([*PREDICT, "--data", "{data}", "--out", "{data}"], "--out"),
    ([*PREDICT, "--data", "{tmp}/missing.jsonl", "--out", "{tmp}/p.jsonl"], "--data"),
    ([*PREDICT, "--data", "{folder}", "--out", "{tmp}/p.jsonl"], "--data"),
    ([*PREDICT, "--data", "{data}"], "--out"),
    ([*PREDICT, "--image", "{image}", "--query", "the heart", "--out", "{tmp}/ov.jsonl"], "--out"),
    ([*PREDICT, "--image", "{image}", "--query", "the heart", "--out", "{folder}"], "--out"),
    ([*PREDICT, "--image", "{image}", "--query", "the heart", "--out", "{image}"], "--out"),
    ([*PREDICT, "--image", "{tmp}/missing.png", "--query", "the heart"], "--image"),
    ([*PREDICT, "--image", "{image}"], "--query"),
    (["segment", "--data", "{data}", "--out", "{tmp}/s.jsonl", "--limit", "-1"], "--limit"),
    (["segment", "--data", "{data}", "--out", "{folder}"], "--out"),
    (["segment", "--data", "{data}", "--out", "{data}"], "--out"),
    (["segment", "--data", "{data}", "--out", "{tmp}/s.jsonl", "--prompt", "bogus"], "--prompt"),
    (["segment", "--data", "{data}", "--out", "{tmp}/s.jsonl", "--segmenter", "nosuch"], "--segmenter"),
    (["segment", "--data", "{data}", "--out", "{tmp}/s.jsonl", "--device", "bogus"], "--device"),
    (["evaluate", "{data}", "--data", "{data}", "--json", "{folder}"], "--json"),
    (["evaluate", "{data}", "--data", "{data}", "--max-groups", "-1"], "--max-groups"),
    (["evaluate", "{folder}", "--data", "{data}"], "is a folder"),
    (["data", "export", "verl", "{dir}", "--out", "{file}"], "--out"),
    (["data", "convert", "mscxr", "{file}", "--out", "{file}"], "--out"),
    (["data", "stats", "{dir}", "--plot", "{folder}"], "--plot"),
    (["data", "stats", "{dir}", "--top", "-1"], "--top"),
    (["data", "validate", "{folder}"], "is a folder"),
    (["data", "phantom", "--out", "{file}", "--n", "1"], "--out"),
    (["data", "phantom", "--out", "{tmp}/ph2", "--n", "1", "--size", "8"], "--size"),
    (["model", "tiny", "--out", "{file}"], "--out"),
    (["demo", "--out", "{file}"], "--out"),
    (["semantic", "fit", "--data", "{tmp}/missing.jsonl", "--out", "{tmp}/enc"], "missing.jsonl: file not found"),
    (["semantic", "fit", "--data", "{data}", "--out", "{file}"], "--out"),
]


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_a_bad_argument_is_one_line_naming_it_exit_2(paths, capsys, argv, needle):
    args = [a.format(**paths) for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert needle in err

