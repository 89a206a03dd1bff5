"""The released MedGround-R1 / VLM-R1 / MedReasoner regexes against their linear replacements.

    python benchmarks/bench_released_patterns.py [--sizes 1000 2000 4000 8000] [--big 1000000] [--repeats 3]

For each released pattern (kept in its module as the definition) and a hostile text a
policy can generate, one table: milliseconds of the pattern run by ``re`` and of the
function medground runs instead, at growing sizes, and the ratio regex / linear.  The
regex is quadratic (or worse), so its column grows with the square of the size; the
linear column with the size.  ``--big`` times the linear functions alone on a text of
that many characters (the regex would take hours).
"""

from __future__ import annotations

import argparse
import re
import time


def best_of(fn, arg, repeats: int) -> float:
    """Fastest of ``repeats`` calls ``fn(arg)``, seconds."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t)
    return best


def cases():
    """``(name, regex version, linear version, hostile text of n characters)``."""
    from medground.evaluate.readers import VLM_R1_ANSWER_RE, VLM_R1_BOX_RE, extract_vlm_r1_box
    from medground.rewards.medground_r1 import (
        ANSWER_TAG_PATTERN,
        BBOX_PATTERN,
        FORMAT_PATTERN,
        released_answer_box,
        released_format_match,
    )
    from medground.rewards.medreasoner import THINK_BLOCK_RE, extract_think_answer

    def regex_box(t):
        m = re.search(ANSWER_TAG_PATTERN, t, re.DOTALL)
        return m and re.search(BBOX_PATTERN, m.group(1).strip())

    def regex_vlm(t):
        m = VLM_R1_ANSWER_RE.search(t)
        return m and VLM_R1_BOX_RE.search(m.group(1).strip())

    fmt = re.compile(FORMAT_PATTERN, re.DOTALL)
    return [
        ("MedGround-R1 answer box: <answer> x n", regex_box, released_answer_box, lambda n: "<answer>" * (n // 8)),
        ("MedGround-R1 format: box-in-brace x n", fmt.fullmatch, released_format_match,
         lambda n: "<think>x</think><answer>" + "{[1, 2, 3, 4]" * (n // 13) + "</answer>"),  # no "}": no match
        ("VLM-R1 eval box: { x n", regex_vlm, extract_vlm_r1_box, lambda n: "<answer>" + "{" * n + "</answer>"),
        ("MedReasoner think block: <think> x n", THINK_BLOCK_RE.search, extract_think_answer,
         lambda n: "<think>" * (n // 7)),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 2_000, 4_000, 8_000])
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    for name, regex, linear, make in cases():
        print(f"\n{name}")
        print(f"{'chars':>9} {'regex ms':>10} {'linear ms':>10} {'ratio':>8}")
        for n in args.sizes:
            text = make(n)
            t_re = best_of(regex, text, 1)
            t_lin = best_of(linear, text, args.repeats)
            print(f"{len(text):>9} {1e3 * t_re:>10.1f} {1e3 * t_lin:>10.3f} {t_re / t_lin:>8.0f}")
        text = make(args.big)
        print(f"{len(text):>9} {'(not run)':>10} {1e3 * best_of(linear, text, args.repeats):>10.3f}")


if __name__ == "__main__":
    main()
