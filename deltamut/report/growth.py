"""A probe's error growth along the kernels: where a mutant's effect starts, grows, shrinks or is masked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deltamut.outcome import ProbeStatus
from deltamut.report.common import add_note, new_figure, note_figure, save_figure


def plot_growth(profile: dict[str, Any], path: str | Path) -> Path:
    """Median relative error over the witness images at each kernel call: propagated (what the next layer
    reads) and local (what the kernel adds by itself), against the noise floor; the root kernel marked."""
    title = f"{profile.get('a', 'mutant')}: error along the kernels"
    growth = profile.get("growth") or []
    if profile.get("status") != ProbeStatus.OK or not growth:
        return note_figure(path, title, profile.get("reason") or "the probe recorded no kernel")
    index = np.array([g["index"] for g in growth])
    fig = new_figure(max(6.0, 0.12 * len(growth)), 3.6)
    ax = fig.add_subplot(111)
    tiny = 1e-12  # zero error drawn at the bottom of a log axis
    for key, style, label in (("propagated_rel", "-o", "propagated"), ("local_rel", "s", "local (replayed)")):
        values = np.array([np.nan if g[key] is None else max(g[key], tiny) for g in growth], dtype=float)
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
