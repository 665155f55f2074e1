"""Kernel mode: every kernel's output of two builds of one model, on the same images, without touching either build.

The Relax VM calls an instrument around every Call instruction; a TIR kernel writes its result into its last
argument (destination-passing style), so after the call that argument is the kernel's output. Two numbers per
kernel and image come out of one run of the reference build `a`:

- *propagated* error: `b`'s own output at that call (from a separate full run of `b`) against `a`'s, which is
  what a reader of the final logits sees, accumulated along the way;
- *local* error: `b`'s kernel at the same call replayed on `a`'s inputs of that call against `a`'s output,
  which is the error that kernel adds by itself (TVM's `LibCompareVMInstrument` idea). The root kernel of a
  disagreement is the first with a local error beyond the noise; kernels after it may show propagated error only.

Nothing is marked as an output and nothing is rebuilt, so fusion and schedules are those of the real builds
(marking ONNX outputs changes fusion, which can hide a fusion bug).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.numeric import max_abs_diff, relative_diff


@dataclass
class KernelCall:
    """One kernel call of a build on one image: its position among the calls, its symbol, its output."""

    index: int
    name: str
    output: np.ndarray


class TracedBuild:
    """A library loaded on the host CPU with an instrumented VM (the builds compared here run on one host)."""

    def __init__(self, lib: str | Path):
        import tvm
        from tvm.runtime.vm import VirtualMachine

        self._tvm = tvm
        self._tensor = tvm.runtime.Tensor
        self.path = Path(lib)
        self.module = tvm.runtime.load_module(str(lib))
        self.vm = VirtualMachine(self.module, tvm.cpu())
        self._hook: Any = None
        self._before: Any = None
        self.vm.set_instrument(self._instrument)

    def _instrument(self, func, name, before_run, ret_value, *args):
        # called around every VM instruction: only a TIR kernel (not a builtin such as `vm.builtin.alloc_tensor`)
        # with a tensor to write goes to the hooks, `_before` as it starts, `_hook` when it has run
        if args and isinstance(args[-1], self._tensor) and not name.startswith("vm."):
            if before_run and self._before is not None:
                self._before(name)
            elif not before_run and self._hook is not None:
                self._hook(name, args)
        return 0  # VMInstrumentReturnKind.NO_OP

    def kernel(self, name: str):
        """This build's kernel `name`, callable with another build's arguments."""
        return self.module.get_function(name, query_imports=True)

    def run(self, x: np.ndarray, hook=None, before=None) -> np.ndarray:
        """Run `main` on one batch, calling `before(name)` as every kernel starts and `hook(name, args)` after it;
        return the logits."""
        self._hook, self._before = hook, before
        try:
            out = self.vm["main"](self._tvm.runtime.tensor(np.ascontiguousarray(x)))
        finally:
            self._hook = self._before = None
        return (out if hasattr(out, "numpy") else out[0]).numpy()

    def trace(self, x: np.ndarray) -> tuple[list[KernelCall], np.ndarray]:
        """Every kernel's output on `x`, in call order, and the logits."""
        calls: list[KernelCall] = []
        logits = self.run(x, lambda name, args: calls.append(KernelCall(len(calls), name, args[-1].numpy())))
        return calls, logits


def _error(ref: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """max |Δ| and that relative to the reference's largest magnitude; a NaN or inf counts as an infinite error
    (a kernel that produces one departs, whatever the noise)."""
    worst, rel = max_abs_diff(ref, other), relative_diff(ref, other)
    return (float("inf"), float("inf")) if not (np.isfinite(worst) and np.isfinite(rel)) else (worst, rel)


def compare_kernels(a: TracedBuild, b: TracedBuild, images: np.ndarray, ids: list[str]) -> tuple[list[dict], dict]:
    """Per kernel call and image: `a`'s output scale, the propagated and the local error of `b` (module doc).

    Returns the rows and, per image, both builds' logits. Calls are matched by position, as long as each
    writes a tensor of the same shape in both builds (a kernel-level mutant and its original, builds that
    differ in codegen only, a graph-level mutant that swaps one operator for another); where the sequences
    part, the propagated error of the rest is left undefined. `b`'s kernel at the same position is replayed,
    whatever its name.
    """
    rows: list[dict] = []
    logits: dict[str, dict[str, np.ndarray]] = {}
    for image_id, x in zip(ids, images, strict=True):
        batch = x[None]
        b_calls, b_logits = b.trace(batch)
        aligned = True
        position = 0

        def hook(name, args, image_id=image_id, b_calls=b_calls):
            nonlocal aligned, position
            ref = args[-1].numpy()
            row = {"image": image_id, "index": position, "kernel": name, "shape": "x".join(map(str, ref.shape)),
                   "scale": float(np.max(np.abs(ref))) if ref.size else 0.0}
            theirs = b_calls[position] if position < len(b_calls) else None
            # the builds line up while each call writes a tensor of the same shape; a graph-level mutant that
            # swaps an operator (ReLU6 -> sigmoid) renames the fused kernel at that call but keeps the line-up
            aligned = aligned and theirs is not None and theirs.output.shape == ref.shape
            row["aligned"] = aligned
            row["mutant_kernel"] = theirs.name if theirs is not None else None
            row["propagated_abs"], row["propagated_rel"] = _error(ref, theirs.output) if aligned else (None, None)
            other = theirs.name if aligned else name
            row["local_abs"], row["local_rel"], row["replay_error"] = _replay(b, other, args, ref)
            rows.append(row)
            position += 1

        a_logits = a.run(batch, hook)
        logits[image_id] = {"a": a_logits, "b": b_logits}
    return rows, logits


def _replay(b: TracedBuild, name: str, args: tuple, ref: np.ndarray) -> tuple[float | None, float | None, str | None]:
    """`b`'s kernel `name` on copies of `a`'s arguments of this call: its local error, or why it could not run."""
    tvm = b._tvm
    try:
        fn = b.kernel(name)
    except Exception:  # TVM raises its own error type for a missing symbol
        return None, None, f"{b.path.name} has no kernel {name}"
    inputs = [tvm.runtime.tensor(v.numpy()) if isinstance(v, tvm.runtime.Tensor) else v for v in args[:-1]]
    out = tvm.runtime.empty(args[-1].shape, args[-1].dtype)
    try:
        fn(*inputs, out)
    except Exception as exc:  # a signature mismatch between the builds' kernels of one name
        return None, None, f"replay of {name} failed: {str(exc).splitlines()[0][:200]}"
    local_abs, local_rel = _error(ref, out.numpy())
    return local_abs, local_rel, None
