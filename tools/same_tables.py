"""Are two studies' verdicts the same? Compare the per-pair and kill-matrix tables of two result trees.

A refactoring must not change what a study finds. This reads `results/<model>/compare/per_pair.parquet` and
`kill_matrix.parquet` of every model in both trees, matches rows by their keys, and compares every column the
two share, but timings (latency, ratios and their statistics, which vary between any two runs) and provenance
(host, versions). Columns only one side has are listed, not compared: a change may add columns. Floats are
equal within `--rtol` (default 1e-6: the same builds give the same bits; a rebuild may reorder a reduction).

A row that both runs measured as nondeterministic (`nondeterministic_images` > 0: a mutant that reads out of
bounds gives other logits on every run, with the same code) must keep its verdict, status and every other
non-numeric column, but its numbers are samples of its own jitter: where they differ they are printed as
jitter, not counted as differences.

    .venv/bin/python tools/same_tables.py BEFORE_DIR AFTER_DIR

Exit status 0 when every shared value agrees, 1 otherwise (the differences are printed).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

KEYS = {"per_pair": ["model", "kind", "a", "b"], "kill_matrix": ["model", "opt", "device", "mutant"]}
# what varies between two runs of the same study, and what says where and with what it ran
VOLATILE = ("latency", "median_latency", "host", "tvm_", "torch_", "onnxruntime_", "target_str")


def _volatile(column: str) -> bool:
    return column.startswith(VOLATILE) or "latency" in column


def _same(x, y, rtol: float) -> bool:
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rtol, abs_tol=1e-12)
    if pd.isna(x) and pd.isna(y):
        return True
    return x == y


def _jittery(row: pd.Series) -> bool:
    return bool(row.get("nondeterministic_images", 0) or 0)


def compare_tables(before: pd.DataFrame, after: pd.DataFrame, keys: list[str],
                   rtol: float) -> tuple[list[str], list[str]]:
    """Differences between two tables of one kind, and the numbers of nondeterministic rows that moved, as
    lines."""
    out, jitter = [], []
    only = sorted(set(before.columns) ^ set(after.columns))
    if only:
        out.append(f"  columns on one side only (not compared): {', '.join(only)}")
    b, a = before.set_index(keys), after.set_index(keys)
    for missing, side in ((b.index.difference(a.index), "before"), (a.index.difference(b.index), "after")):
        out += [f"  row only {side}: {row}" for row in missing]
    shared = [c for c in b.columns if c in a.columns and not _volatile(c)]
    for row in b.index.intersection(a.index):
        noisy = _jittery(b.loc[row]) and _jittery(a.loc[row])
        for c in shared:
            x, y = b.at[row, c], a.at[row, c]
            if not _same(x, y, rtol):
                numeric = pd.api.types.is_numeric_dtype(b[c]) and not pd.api.types.is_bool_dtype(b[c])
                (jitter if noisy and numeric else out).append(f"  {row} {c}: {x!r} -> {y!r}")
    return out, jitter


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--rtol", type=float, default=1e-6)
    args = ap.parse_args(argv)
    failures = 0
    for table, keys in KEYS.items():
        files = sorted((args.before / "results").glob(f"*/compare/{table}.parquet"))
        for f in files:
            other = args.after / f.relative_to(args.before)
            if not other.is_file():
                print(f"{other}: missing")
                failures += 1
                continue
            diffs, jitter = compare_tables(pd.read_parquet(f), pd.read_parquet(other), keys, args.rtol)
            real = [d for d in diffs if not d.startswith("  columns on one side only")]
            failures += len(real)
            print(f"{f.relative_to(args.before)}: {'same' if not real else f'{len(real)} difference(s)'}"
                  + (f" ({len(jitter)} number(s) of nondeterministic rows moved)" if jitter else ""))
            for line in diffs[:40] + [f"{line}  [jitter]" for line in jitter[:40]]:
                print(line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
