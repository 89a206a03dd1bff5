"""`medground data stats`: counts, box-size / aspect distributions, histogram PNG."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from medground.cli import main
from medground.data.schema import Sample, write_jsonl
from medground.data.stats import compute_stats, format_table, plot_stats


@pytest.fixture
def ds(tmp_path):
    def s(i, cat, box, split):
        return Sample(id=f"s{i}", image="img.png", query="q", boxes=[box], category=cat, split=split,
                      width=200, height=100)

    write_jsonl([s(0, "nodule", [0, 0, 20, 10], "train"), s(1, "nodule", [0, 0, 40, 10], "train"),
                 s(2, "effusion", [0, 0, 100, 50], "train")], tmp_path / "train.jsonl")
    write_jsonl([s(3, "nodule", [10, 10, 30, 30], "test"), s(4, None, [0, 0, 50, 25], "test")],
                tmp_path / "test.jsonl")
    return tmp_path


def test_compute_stats_figures(ds):
    st = compute_stats(ds)
    assert st["splits"] == {"test": 2, "train": 3}
    assert st["split_categories"]["test"] == {"(none)": 1, "nodule": 1}
    nod = st["categories"]["nodule"]
    assert nod["samples"] == 3 and nod["boxes"] == 3
    assert nod["aspect"]["median"] == pytest.approx(2.0) and nod["aspect"]["min"] == pytest.approx(1.0)
    assert nod["size"]["max"] == pytest.approx((20 * 20 / 20000) ** 0.5)
    assert nod["width"]["median"] == pytest.approx(20.0)
    eff = st["categories"]["effusion"]
    assert eff["size"]["median"] == pytest.approx(0.5)  # 100x50 box on a 200x100 image
    assert list(st["categories"])[0] == "nodule"  # largest category first
    assert st["overall"]["boxes"] == 5
    table = format_table(st)
    assert "nodule" in table and "effusion" in table and "ALL" in table and "splits: test 2, train 3" in table


def test_plot_and_cli(ds, capsys):
    png = plot_stats(compute_stats(ds), ds / "plot.png", top=1)
    im = Image.open(png)
    assert im.format == "PNG" and im.size[0] > 400
    with pytest.raises(SystemExit) as e:
        main(["data", "stats", str(ds)])
    assert e.value.code in (0, None)
    out = capsys.readouterr().out
    assert "nodule" in out and (ds / "stats.png").exists()
    with pytest.raises(SystemExit):
        main(["data", "stats", str(ds), "--json", "--plot", str(ds / "p2.png")])
    data = json.loads(capsys.readouterr().out)
    assert data["categories"]["effusion"]["boxes"] == 1 and "_raw" not in data
    empty = ds / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["data", "stats", str(empty)])
    assert e.value.code == 2 and "no .jsonl files" in capsys.readouterr().err


def test_plot_goes_beside_the_dataset_by_default(ds):
    from medground.data.stats import default_plot_path

    assert plot_stats(compute_stats(ds)) == ds / "stats.png" == default_plot_path(ds)
    one_file = compute_stats(ds / "train.jsonl")
    assert plot_stats(one_file) == default_plot_path(ds / "train.jsonl") == ds / "stats.png"
    assert Image.open(ds / "stats.png").format == "PNG"
    assert sorted(p.name for p in ds.iterdir()) == ["stats.png", "test.jsonl", "train.jsonl"]  # no temp files left
