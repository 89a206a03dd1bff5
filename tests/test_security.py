"""No code in ``src/`` runs what a file or a string someone sent could contain.

medground reads checkpoints, encoder states, datasets and prediction files that users
exchange; the web app will serve them.  Every module under ``src/`` is parsed with
:mod:`ast` and these calls are refused:

* ``torch.load`` without ``weights_only=True`` (and ``weights_only=False`` anywhere);
* ``pickle`` / ``dill`` / ``joblib`` / ``marshal`` loads, ``pandas.read_pickle``,
  ``numpy.load(..., allow_pickle=True)``;
* ``yaml.load`` / ``yaml.load_all`` without a safe loader, ``yaml.unsafe_load``, ``yaml.full_load``;
* the builtins ``eval`` and ``exec``;
* ``shell=True``, ``os.system``, ``os.popen``;
* ``trust_remote_code=True`` (runs Python shipped with a checkpoint).

An exception needs an entry in :data:`ALLOWED` with a written reason; an entry that no
longer matches anything fails too, so the list never outlives its code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

#: ``(path relative to src/, rule) -> why it is safe``.  Empty today: keep it that way if you can.
ALLOWED: dict[tuple[str, str], str] = {}

SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "cloudpickle"}


def _dotted(node: ast.AST) -> str:
    """``a.b.c`` for a Name / Attribute chain, else ""."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str):
    """The keyword argument ``name`` of ``call`` (its AST value), or None."""
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def call_faults(call: ast.Call) -> list[str]:
    """The rules one call breaks (names of :data:`RULES`)."""
    name = _dotted(call.func)
    last = name.rpartition(".")[2]
    head = name.partition(".")[0]
    faults = []
    if last == "load" and head == "torch" and not _is_const(_kw(call, "weights_only"), True):
        faults.append("torch.load without weights_only=True")
    if _is_const(_kw(call, "weights_only"), False):
        faults.append("weights_only=False")
    if head in PICKLE_MODULES and last in ("load", "loads", "Unpickler"):
        faults.append("unpickling")
    if last == "read_pickle":
        faults.append("unpickling")
    if last == "load" and head in ("np", "numpy") and _is_const(_kw(call, "allow_pickle"), True):
        faults.append("unpickling")
    if head == "yaml" and last in ("unsafe_load", "unsafe_load_all", "full_load", "full_load_all"):
        faults.append("yaml.load without a safe loader")
    if head == "yaml" and last in ("load", "load_all"):
        loader = _kw(call, "Loader") or (call.args[1] if len(call.args) > 1 else None)
        if loader is None or _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
            faults.append("yaml.load without a safe loader")
    if isinstance(call.func, ast.Name) and call.func.id in ("eval", "exec"):
        faults.append(f"{call.func.id}()")
    if _is_const(_kw(call, "shell"), True):
        faults.append("shell=True")
    if name in ("os.system", "os.popen"):
        faults.append("shell=True")
    if _is_const(_kw(call, "trust_remote_code"), True):
        faults.append("trust_remote_code=True")
    return faults


def scan(path: Path) -> list[tuple[int, str]]:
    """``(line, rule)`` for every refused call in a Python file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [(node.lineno, fault) for node in ast.walk(tree) if isinstance(node, ast.Call)
            for fault in call_faults(node)]


def _findings() -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for path in sorted(SRC.rglob("*.py")):
        for line, rule in scan(path):
            found.setdefault((str(path.relative_to(SRC)), rule), []).append(line)
    return found


def test_src_runs_no_code_from_files_or_strings():
    found = _findings()
    faults = [f"src/{path}:{lines[0]}: {rule}" for (path, rule), lines in sorted(found.items())
              if (path, rule) not in ALLOWED]
    assert not faults, "unsafe calls (fix them, or add an entry with its reason to ALLOWED):\n" + "\n".join(faults)


def test_every_allowed_exception_has_a_reason_and_is_still_needed():
    found = _findings()
    for key, reason in ALLOWED.items():
        assert len(reason.split()) >= 5, f"{key}: write why this is safe"
        assert key in found, f"{key} is allowed but no longer found: remove the entry"


@pytest.mark.parametrize("source, rule", [
    ("torch.load(p)", "torch.load without weights_only=True"),
    ("torch.load(p, map_location='cpu', weights_only=False)", "weights_only=False"),
    ("import pickle\npickle.load(f)", "unpickling"),
    ("pickle.loads(b)", "unpickling"),
    ("pd.read_pickle(p)", "unpickling"),
    ("np.load(p, allow_pickle=True)", "unpickling"),
    ("yaml.load(text)", "yaml.load without a safe loader"),
    ("yaml.load(text, Loader=yaml.FullLoader)", "yaml.load without a safe loader"),
    ("yaml.unsafe_load(text)", "yaml.load without a safe loader"),
    ("eval(s)", "eval()"),
    ("exec(code, {})", "exec()"),
    ("subprocess.run(cmd, shell=True)", "shell=True"),
    ("os.system(cmd)", "shell=True"),
    ("AutoModel.from_pretrained(p, trust_remote_code=True)", "trust_remote_code=True"),
])
def test_the_scanner_finds_each_unsafe_call(tmp_path, source, rule):
    f = tmp_path / "m.py"
    f.write_text(source + "\n")
    assert rule in [r for _, r in scan(f)]


@pytest.mark.parametrize("source", [
    "torch.load(p, map_location='cpu', weights_only=True)",
    "yaml.safe_load(text)",
    "yaml.load(text, Loader=yaml.SafeLoader)",
    "model.eval()",
    "ast.literal_eval(s)",
    "subprocess.run(['ls'], check=True)",
    "np.load(p)",
])
def test_the_scanner_lets_safe_calls_pass(tmp_path, source):
    f = tmp_path / "m.py"
    f.write_text(source + "\n")
    assert scan(f) == []
