"""medground.shards: disjoint shards that cover the data, parts beside the output, a merge
that only ever writes a complete file and never rewrites a part."""

from __future__ import annotations

import json

import pytest

from medground.errors import MedgroundError
from medground.shards import Shard, current_shard, merge_parts, part_path, read_part


@pytest.mark.parametrize("n, world", [(0, 2), (1, 2), (7, 2), (10, 3), (5, 8)])
def test_shards_are_disjoint_and_cover_everything(n, world):
    items = [f"s{i}" for i in range(n)]
    shards = [Shard(r, world).take(items) for r in range(world)]
    assert sorted(x for s in shards for x in s) == sorted(items)
    assert sum(len(s) for s in shards) == n
    assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced


def test_current_shard_reads_the_launcher_environment():
    assert current_shard({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}) == Shard(2, 4)
    assert not current_shard({}).parallel
    with pytest.raises(MedgroundError, match="RANK=4 does not fit WORLD_SIZE=4"):
        current_shard({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(MedgroundError, match="not integers"):
        current_shard({"RANK": "x", "WORLD_SIZE": "2"})


def test_part_paths_are_distinct_siblings(tmp_path):
    out = tmp_path / "runs" / "pred.jsonl"
    parts = {part_path(out, Shard(r, 3)) for r in range(3)}
    assert len(parts) == 3 and all(p.parent == out.parent and p.suffix == ".jsonl" for p in parts)
    assert part_path(out, Shard(0, 3)).name == "pred.part-0-of-3.jsonl"


def _write(path, ids, tail=b""):
    path.write_bytes(b"".join(json.dumps({"id": i, "v": i.upper()}).encode() + b"\n" for i in ids) + tail)


def test_merge_waits_for_every_part_and_keeps_the_data_order(tmp_path):
    out = tmp_path / "pred.jsonl"
    p0, p1 = part_path(out, Shard(0, 2)), part_path(out, Shard(1, 2))
    order = ["c", "a", "d", "b"]
    _write(p0, ["c", "d"])
    _write(p1, ["a"], tail=b'{"id": "b", "v"')  # rank 1 is still writing its last line
    before = p1.read_bytes()
    assert merge_parts(out, [p0, p1], order) is False
    assert not out.exists()
    assert p1.read_bytes() == before  # a part is only read, never repaired by another process
    assert set(read_part(p1)) == {"a"}
    _write(p1, ["a", "b"])
    assert merge_parts(out, [p0, p1], order) is True
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == order
    assert merge_parts(out, [p0, p1], order) is True  # idempotent: a rerun merges the same file
    assert [json.loads(x)["v"] for x in out.read_text().splitlines()] == ["C", "A", "D", "B"]
