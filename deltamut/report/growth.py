"""A probe's error growth along the kernels: where a mutant's effect starts, grows, shrinks or is masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deltamut.outcome import ProbeStatus
from deltamut.report.common import add_note, new_figure, note_figure, save_figure

TINY = 1e-12  # zero error drawn at the bottom of a log axis


def _named_axis(ax, named: dict[str, Any]) -> None:
    """Named mode beside it: the median error at each ONNX node's output (every tensor an output of both
    builds), against its floor, the root node marked."""
    along = named["along"]
    x = np.arange(len(along))
    ax.plot(x, [np.nan if a["err_rel"] is None else max(a["err_rel"], TINY) for a in along], "-o", markersize=3,
            label="at the ONNX node's output")
    ax.plot(x, [a["floor_rel"] for a in along], ":", color="grey", label="noise floor")
    ax.set_yscale("log")
    ax.set_xlabel("ONNX node (topological order)")
    ax.set_ylabel("max |Δ| / max |reference|")
    title = "named mode" + (": the disagreement vanished with every tensor an output" if named.get("vanished")
                            else "")
    ax.set_title(title, fontsize=9)
    root = [i for i, a in enumerate(along) if a["node"] == named.get("root_node")]
    if root:
        ax.axvline(root[0], color="#D55E00", linewidth=1)
        ax.text(root[0], 0.97, f" root {named['root']}", transform=ax.get_xaxis_transform(), fontsize=8,
                va="top", color="#D55E00")
    ax.legend(fontsize=7)


def plot_growth(profile: dict[str, Any], path: str | Path) -> Path:
    """Median relative error over the witness images at each kernel call: propagated (what the next layer
    reads) and local (what the kernel adds by itself), against the noise floor; the root kernel marked."""
    title = f"{profile.get('a', 'mutant')}: error along the kernels"
    growth = profile.get("growth") or []
    if profile.get("status") != ProbeStatus.OK or not growth:
        why = profile.get("reason") or "the probe recorded no kernel"
        if profile.get("status") == ProbeStatus.OK and profile.get("root"):  # a failure: no values to plot
            why = f"it fails ({profile['predicate'].get('symptom')}): {profile['root_by']} {profile['root']}"
        return note_figure(path, title, why)
    index = np.array([g["index"] for g in growth])
    named = profile.get("named") or {}
    along = named.get("along") or []
    fig = new_figure(max(6.0, 0.12 * len(growth)), 6.8 if along else 3.6)
    ax = fig.add_subplot(211 if along else 111)
    if along:
        _named_axis(fig.add_subplot(212), named)
        fig.subplots_adjust(hspace=0.45)
    for key, style, label in (("propagated_rel", "-o", "propagated"), ("local_rel", "s", "local (replayed)")):
        values = np.array([np.nan if g[key] is None else max(g[key], TINY) for g in growth], dtype=float)
        ax.plot(index, values, style, markersize=3, label=label)
    ax.plot(index, [g["floor_rel"] for g in growth], ":", color="grey", label="noise floor")
    ax.set_yscale("log")
    ax.set_xlabel("kernel call")
    ax.set_ylabel("max |Δ| / max |reference|")
    ax.set_title(title, fontsize=10)
    if profile.get("root_index") is not None:
        ax.axvline(profile["root_index"], color="#D55E00", linewidth=1)
        op = profile.get("root_onnx_op_type")
        ax.text(profile["root_index"], 0.97, f" root #{profile['root_index']}" + (f" ({op})" if op else ""),
                transform=ax.get_xaxis_transform(), fontsize=8, va="top", color="#D55E00")
        add_note(fig, f"root ({profile['root_by']}): {profile['root']}.")
    ax.legend(fontsize=7)
    add_note(fig, f"Median over {profile['images']} witness images; flipped: {len(profile['flipped'])}, "
                  f"masked before the logits: {len(profile['masked'])}; zero errors drawn at 1e-12.")
    return save_figure(fig, path)
