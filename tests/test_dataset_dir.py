"""A dataset folder is read once, each sample once (issue 12, item 1): the files that make
it, the manifest, duplicate ids named in both places, and what ``data stats`` / ``data
export`` say they read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medground.data.dataset_dir import MANIFEST, read_dataset, write_dataset
from medground.data.export import export, load_dataset_dir
from medground.data.phantom import generate_phantom_dataset
from medground.data.schema import Sample, read_jsonl, write_jsonl
from medground.data.stats import compute_stats
from medground.errors import MedgroundError


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("phantom")
    generate_phantom_dataset(out, n=10, seed=1, size=64, progress=False)
    return out


def _sample(sid: str, split: str | None = None) -> Sample:
    return Sample(id=sid, image="images/a.png", query="the heart", boxes=[[1, 2, 30, 40]], split=split)


def test_the_phantom_folder_counts_every_sample_once(phantom):
    n = len(read_jsonl(phantom / "all.jsonl"))
    ds = read_dataset(phantom)
    assert sum(len(v) for v in ds.by_split.values()) == n
    assert len({s.id for s in ds.samples}) == n
    assert ds.ignored == {"all.jsonl": "not listed in dataset.json"}
    assert compute_stats(phantom)["overall"]["samples"] == n


def test_data_stats_and_export_read_each_sample_once_and_say_what_they_read(phantom, tmp_path, capsys, run):
    import pyarrow.parquet as pq

    n = len(read_jsonl(phantom / "all.jsonl"))
    code, out, err = run(["data", "stats", str(phantom), "--json", "--plot", str(tmp_path / "s.png")], capsys)
    assert code == 0, err
    stats = json.loads(out)
    assert stats["overall"]["samples"] == n
    assert "train.jsonl" in stats["read"] and "not read: all.jsonl" in stats["read"]

    code, out, err = run(["data", "export", "verl", str(phantom), "--out", str(tmp_path / "verl"), "--quiet"], capsys)
    assert code == 0, err
    assert f"read {n} samples" in out and "all.jsonl (not listed in dataset.json)" in out
    rows = sum(pq.read_table(tmp_path / "verl" / f"{sp}.parquet").num_rows for sp in ("train", "val", "test"))
    ids = [i for sp in ("train", "val", "test")
           for i in pq.read_table(tmp_path / "verl" / f"{sp}.parquet").column("extra_info").to_pylist()]
    assert rows == n and len({i["id"] for i in ids}) == n


def test_without_a_manifest_all_jsonl_and_hidden_files_are_left_out(phantom, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("train.jsonl", "val.jsonl", "test.jsonl", "all.jsonl"):
        (folder / name).write_text((phantom / name).read_text())
    (folder / ".train.jsonl.x1y2.tmp.jsonl").write_text((phantom / "train.jsonl").read_text())  # a killed writer's
    ds = read_dataset(folder)
    assert ds.rule == "split files" and sorted(ds.files) == ["test.jsonl", "train.jsonl", "val.jsonl"]
    assert ds.ignored == {"all.jsonl": "the union of the split files"}
    assert len(ds.samples) == len(read_jsonl(phantom / "all.jsonl"))
    # all.jsonl alone is the dataset
    for name in ("train.jsonl", "val.jsonl", "test.jsonl"):
        (folder / name).unlink()
    assert read_dataset(folder).files == {"all.jsonl": len(read_jsonl(phantom / "all.jsonl"))}


def test_a_sample_id_met_twice_is_an_error_naming_both_places(tmp_path):
    write_jsonl([_sample("a", "train"), _sample("b", "train")], tmp_path / "train.jsonl")
    write_jsonl([_sample("c", "train"), _sample("a", "train")], tmp_path / "train_extra.jsonl")
    with pytest.raises(MedgroundError) as exc:
        load_dataset_dir(tmp_path)
    msg = str(exc.value)
    assert "train_extra.jsonl:2 [id=a]" in msg and "train.jsonl:1" in msg and MANIFEST in msg
    write_jsonl([_sample("x"), _sample("x")], tmp_path / "one.jsonl")
    with pytest.raises(MedgroundError, match=r"one.jsonl:2 \[id=x\]: duplicate id, also at .*one.jsonl:1"):
        read_dataset(tmp_path / "one.jsonl")


def test_the_cli_names_a_duplicate_with_exit_2(tmp_path, capsys, run):
    write_jsonl([_sample("a", "train")], tmp_path / "train.jsonl")
    write_jsonl([_sample("a", "test")], tmp_path / "test.jsonl")
    code, _, err = run(["data", "stats", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "[id=a]: duplicate id" in err


def test_the_demo_subset_does_not_count_its_sft_file(phantom, tmp_path):
    """``select_categories`` writes the subset with its manifest; the SFT file the demo
    writes beside it later is not a split of the dataset."""
    from medground.demo import DemoConfig, select_categories, sft_train_file

    cfg = DemoConfig(exclude_categories=["nodule"], sft_tasks=["explicit"])
    sub = select_categories(cfg, phantom, tmp_path)
    before = read_dataset(sub)
    sft = sft_train_file(cfg, sub)
    assert sft.parent == sub and len(read_jsonl(sft)) > 0
    after = read_dataset(sub)
    assert {k: len(v) for k, v in after.by_split.items()} == {k: len(v) for k, v in before.by_split.items()}
    assert after.ignored == {"train_sft.jsonl": "not listed in dataset.json"}
    assert not any(s.category == "nodule" for s in after.samples)


def test_converters_write_the_manifest(tmp_path):
    write_dataset({"train": [_sample("a", "train")], "all": [_sample("b", "all")]}, tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["splits"] == {"all": "all.jsonl", "train": "train.jsonl"}
    # a manifest is authoritative: all.jsonl is read when it lists it
    assert sorted(read_dataset(tmp_path).by_split) == ["all", "train"]


@pytest.mark.parametrize("splits, needle", [
    ({"train": "missing.jsonl"}, "lists missing.jsonl for split 'train', which does not exist"),
    ({"train": "../train.jsonl"}, "give a .jsonl file in the same folder"),
    ({"train": "train.json"}, "give a .jsonl file in the same folder"),
])
def test_a_bad_manifest_is_named(tmp_path, splits, needle):
    write_jsonl([_sample("a")], tmp_path / "train.jsonl")
    (tmp_path / MANIFEST).write_text(json.dumps({"splits": splits}))
    with pytest.raises(MedgroundError, match="dataset.json") as exc:
        read_dataset(tmp_path)
    assert needle in str(exc.value)


def test_export_from_python_reports_what_it_read(phantom, tmp_path):
    result = export("r1-json", phantom, tmp_path / "r1", splits=["test"])
    assert result.counts == {"test": len(read_jsonl(phantom / "test.jsonl"))}
    assert result.read.startswith(f"read {len(read_jsonl(phantom / 'all.jsonl'))} samples from")
