"""Reading a user's `.pth` and loading it strictly, with errors that say which file and what is wrong.

A silently half-loaded model would make every later comparison meaningless, so loading is strict:
every key present, none extra, every shape equal.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

from deltamut.models.errors import ModelError

# Training scripts commonly wrap the state dict in a checkpoint dict under one of these keys.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a raw state dict or of a checkpoint wrapping one; `weights_only` keeps pickles inert."""
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files (pickle, zip, unpickler errors)
        raise ModelError(f"weights file {path} cannot be read as a PyTorch state dict: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"weights file {path} holds no state dict (a dict of tensors, optionally under "
                         f"one of the keys {', '.join(_WRAPPER_KEYS)})")
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _listing(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Load `state` into `module` or raise one ModelError that lists what does not match."""
    expected = module.state_dict()
    # Files saved before torch 0.4.1 lack the batch-norm step counters, which eval never reads;
    # torch itself fills them in for such files, so do the same instead of calling them missing.
    state = dict(state)
    for k in expected:
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = expected[k]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {_listing(missing)}")
        if unexpected:
            # a renamed key (a typo, another exporter's spelling) is one missing and one unexpected: pair them
            near = {k: difflib.get_close_matches(k, missing, n=1, cutoff=0.8) for k in unexpected[:5]}
            shown = [f"{k} (did you mean {near[k][0]}?)" if near.get(k) else k for k in unexpected]
            parts.append(f"{len(unexpected)} unexpected keys: {_listing(shown)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatches (file vs {arch}): {_listing(mismatched)}")
        raise ModelError(f"weights file {path} does not fit architecture {arch}: {'; '.join(parts)}")
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
