"""Completion parsing on hostile input: linear time, measured.

    python benchmarks/bench_parsing.py [--sizes 20000 1000000] [--repeats 3]

Two tables in one run:

1. The bare-box regex with today's number pattern (one way to read a digit run) against
   the pattern it replaced (``\\d+\\.?\\d*``, two ways to split every run, so a failed
   match backs off quadratically): ``"[" + n digits`` for growing ``n``; the ratio is
   old / new.  The old pattern is not run past 8 000 digits (it took 104 s on 20 000
   in ``medground evaluate``).
2. ``parse_completion`` on each hostile input of the test suite
   (``tests/test_parsing.py::HOSTILE``) at each size, beside a benign completion of the
   same length (a long reasoning text and one JSON answer): milliseconds, and the ratio
   hostile / benign.
"""

from __future__ import annotations

import argparse
import re
import time

OLD_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def best_of(fn, arg, repeats: int) -> float:
    """Fastest of ``repeats`` calls ``fn(arg)``, seconds."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t)
    return best


def hostile_inputs(size: int) -> dict[str, str]:
    units = {
        "digit run": ("[", "1"), "open brackets": ("", "["), "open braces": ("", "{"),
        "think tags": ("", "<think>"), "partial boxes": ("", "[1, 2, 3, "), "apostrophes": ("", "'["),
        "string openers": ("", '["'), "fences": ("", "```json\n{"), "failing objects": ("", "{a: 1} "),
        "python-ish failures": ("", "{'a': (1} "), "whitespace runs": ("[", " " * 50 + ","),
    }
    out = {name: head + unit * max(1, (size - len(head)) // len(unit)) for name, (head, unit) in units.items()}
    out["balanced nesting"] = "[" * (size // 2) + "]" * (size // 2)
    return out


def benign(size: int) -> str:
    sentence = "The left costophrenic angle is blunted and the heart is not enlarged. "
    think = sentence * max(1, (size - 80) // len(sentence))
    return f'<think>{think}</think><answer>{{"bbox_2d": [12, 40, 56, 90]}}</answer>'


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from medground.parsing import BARE_BOX_RE, parse_completion

    old = re.compile(rf"[\[(]\s*({OLD_NUM})\s*,\s*({OLD_NUM})\s*,\s*({OLD_NUM})\s*,\s*({OLD_NUM})\s*[\])]")
    print("1. bare-box regex on '[' + n digits (ms)")
    print(f"{'n':>8} {'old pattern':>12} {'new pattern':>12} {'old/new':>9}")
    for n in (1000, 2000, 4000, 8000):
        text = "[" + "1" * n
        t_old = best_of(lambda t: list(old.finditer(t)), text, 1)
        t_new = best_of(lambda t: list(BARE_BOX_RE.finditer(t)), text, args.repeats)
        print(f"{n:>8} {1e3 * t_old:>12.1f} {1e3 * t_new:>12.3f} {t_old / t_new:>9.0f}")

    print("\n2. parse_completion (ms; ratio = hostile / benign of the same length)")
    for size in args.sizes:
        base = best_of(parse_completion, benign(size), args.repeats)
        print(f"\n{size} characters: benign completion {1e3 * base:.2f} ms")
        print(f"{'input':<24} {'ms':>8} {'ratio':>7}")
        for name, text in hostile_inputs(size).items():
            t = best_of(parse_completion, text, args.repeats)
            print(f"{name:<24} {1e3 * t:>8.2f} {t / base:>7.1f}")


if __name__ == "__main__":
    main()
