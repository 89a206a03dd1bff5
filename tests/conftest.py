import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module that trains tiny models: faster for them, and far
    faster when other jobs share the cores; the previous count is restored after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _run_cli(argv, capsys) -> tuple[int, str, str]:
    """``medground ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    from medground.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return exc.value.code or 0, captured.out, captured.err


@pytest.fixture
def run():
    """The CLI in this process: ``code, out, err = run(["data", "validate", F], capsys)``."""
    return _run_cli


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The tiny evaluation example of ``examples/make_example.py`` (dataset, images, predictions)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "make_example.py"
    spec = importlib.util.spec_from_file_location("make_example", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path_factory.mktemp("tiny")
    mod.main(out)
    return out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny Qwen2.5-VL checkpoint (seed 0), built once per test module."""
    from medground.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("ckpt") / "tiny", seed=0)


@pytest.fixture(scope="module")
def policy(tiny_dir):
    """``tiny_dir`` loaded on the CPU."""
    from medground.models.policy import load_policy

    return load_policy(tiny_dir, device="cpu")
