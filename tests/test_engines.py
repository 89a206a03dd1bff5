"""medground.engines: the engine interface of predict (the vLLM engine itself is tested in its
own environment by tests/test_vllm.py)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from medground.cli import main
from medground.data.phantom import generate_phantom_dataset
from medground.engines import ENGINES, load_engine
from medground.errors import MedgroundError
from medground.models.policy import load_policy, load_policy_spec
from medground.models.tiny import build_tiny_model
from medground.predict import predict

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    generate_phantom_dataset(root / "data", n=3, seed=2, size=96, progress=False)
    return build_tiny_model(root / "tiny", seed=0), root / "data" / "all.jsonl"


def test_hf_engine_predicts_exactly_like_the_policy(assets, tmp_path):
    tiny, data = assets
    policy = load_policy(tiny, device="cpu")
    engine = load_engine("hf", tiny, device="cpu")
    assert (engine.frame, engine.template, engine.source) == (policy.frame, policy.template, policy.source)
    a, b = tmp_path / "policy.jsonl", tmp_path / "engine.jsonl"
    predict(policy, data, a, batch_size=3, max_new_tokens=6, progress=False)
    predict(engine, data, b, batch_size=3, max_new_tokens=6, progress=False)
    assert a.read_text() == b.read_text() and len(a.read_text().splitlines()) >= 6


def test_policy_spec_matches_the_loaded_policy_without_weights(assets, tmp_path):
    tiny, _ = assets
    spec, policy = load_policy_spec(tiny, max_pixels=112 * 112), load_policy(tiny, max_pixels=112 * 112)
    assert spec.model is None
    assert (spec.frame, spec.template) == (policy.frame, policy.template)
    assert spec.processor.tokenizer.padding_side == "left"
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny)}))
    with pytest.raises(MedgroundError, match="LoRA adapter; this engine needs a full checkpoint"):
        load_policy_spec(tmp_path / "adapter")


def test_every_engine_documents_its_options():
    assert set(ENGINES.entry("vllm").options) >= {"tensor_parallel_size", "data_parallel_size", "cache_dir"}
    with pytest.raises(MedgroundError, match="engine 'hf' has no option"):
        load_engine("hf", "x", tensor_parallel_size=2)


def _cli(assets, tmp_path, *extra):
    tiny, data = assets
    return ["predict", "--model", str(tiny), "--data", str(data), "--out", str(tmp_path / "p.jsonl"),
            "--max-new-tokens", "2", *extra]


def test_cli_engine_errors_are_one_line(assets, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_cli(assets, tmp_path, "--engine", "tpu"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unknown engine 'tpu'; choose one of hf, vllm" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        main(_cli(assets, tmp_path, "--engine", "vllm", "--device", "cuda:1"))
    assert exc.value.code == 2 and "--device is for --engine hf" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_cli_vllm_engine_without_vllm_says_how_to_install(assets, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(_cli(assets, tmp_path, "--engine", "vllm"))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "needs vLLM" in err and "install_vllm_cpu.sh" in err
    assert len(err.strip().splitlines()) == 1
