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

A device pair's `b` may run where no instrument reaches: a board over TVM RPC (the VM's instrument is a
callback into this process), or a GPU. There (`DeviceBuild`) `b`'s kernels are called one by one on its own
device, in `a`'s call order: once on copies of `a`'s arguments (the local error, as above) and once chained on
`b`'s own earlier outputs, found by which earlier call of `a` wrote each argument's memory (the propagated
error). `b`'s logits come from a real run of its VM, and the chain's last output is checked against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deltamut.numeric import max_abs_diff, relative_diff


@dataclass
class KernelCall:
    """One kernel call of a build on one image: its position among the calls, its symbol, its output, and its
    arguments that no earlier kernel wrote (position -> tensor: its weights and constants, the image)."""

    index: int
    name: str
    output: np.ndarray
    constants: dict[int, Any] = field(default_factory=dict)


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

    def upload(self, value):
        """A copy of another build's argument (a kernel may write into what it reads); scalars as they are."""
        return self._tvm.runtime.tensor(value.numpy()) if isinstance(value, self._tensor) else value

    def call(self, fn, inputs: list, shape, dtype) -> np.ndarray:
        """`fn` on `inputs` into a new output of `shape` and `dtype`."""
        out = self._tvm.runtime.empty(shape, dtype)
        fn(*inputs, out)
        return out.numpy()

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
        written: set[tuple[int, int]] = set()

        def record(name, args):
            constants = {i: v for i, v in enumerate(args[:-1])
                         if isinstance(v, self._tensor) and _address(v) not in written}
            written.add(_address(args[-1]))
            calls.append(KernelCall(len(calls), name, args[-1].numpy(), constants))

        logits = self.run(x, record)
        return calls, logits


class DeviceBuild:
    """The replayed side of a device pair on its own device (a board over TVM RPC, a GPU): its library loaded
    there as the device's infer jobs load it (deltamut.devices.tvm_backend), its kernels callable one by one."""

    def __init__(self, spec: dict[str, Any]):
        import tvm

        from deltamut.devices.tvm_backend import TvmBackend

        self._tvm = tvm
        self.path = Path(spec["lib"])
        self.backend = TvmBackend(spec)
        self.where = self.backend.info()["where"]
        self._kernels: dict[str, Any] = {}  # over RPC each lookup is a round trip: once a kernel, not once a call

    def kernel(self, name: str):
        if name not in self._kernels:
            self._kernels[name] = self.backend.module.get_function(name, query_imports=True)
        return self._kernels[name]

    def upload(self, value):
        """A host value (a `tvm.runtime.Tensor` of `a`'s or a numpy array) as a tensor on this device; scalars
        pass as they are."""
        if isinstance(value, self._tvm.runtime.Tensor):
            value = value.numpy()
        if isinstance(value, np.ndarray):
            # np.require, not np.ascontiguousarray: that one makes a 0-d constant 1-d, which the kernel refuses
            return self._tvm.runtime.tensor(np.require(value, requirements="C"), self.backend.dev)
        return value

    def call(self, fn, inputs: list, shape, dtype) -> np.ndarray:
        """`fn` on device tensors `inputs` into a new output of `shape` and `dtype`, read back to the host."""
        out = self._tvm.runtime.empty(shape, dtype, self.backend.dev)
        fn(*inputs, out)
        return out.numpy()

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.backend(np.ascontiguousarray(x))

    def close(self) -> None:
        self._kernels.clear()
        self.backend.close()


def compare_on_device(a: TracedBuild, b: DeviceBuild, images: np.ndarray, ids: list[str]) -> tuple[list[dict], dict]:
    """`compare_kernels` for a `b` no instrument reaches (module doc): the same rows, the propagated error from
    `b`'s chain of kernels. A kernel `b` lacks or cannot run on these arguments ends the chain there (the rest is
    left undefined), as a parting of the sequences does in `compare_kernels`. Each image's last row says whether
    the chain's output equals `b`'s own logits (`chain_matches_run`)."""
    rows: list[dict] = []
    logits: dict[str, dict[str, np.ndarray]] = {}
    for image_id, x in zip(ids, images, strict=True):
        batch = x[None]
        written: dict[tuple[int, int], np.ndarray] = {}  # a's output memory -> b's output of the call that wrote it
        chain: dict[str, Any] = {"aligned": True, "last": None, "calls": 0}

        def hook(name, args, image_id=image_id, written=written, chain=chain):
            ref = args[-1].numpy()
            row = {"image": image_id, "index": chain["calls"], "kernel": name, "shape": "x".join(map(str, ref.shape)),
                   "scale": float(np.max(np.abs(ref))) if ref.size else 0.0, "mutant_kernel": name}
            sent = [b.upload(v) for v in args[:-1]]  # a's arguments on b's device, once for both calls
            row["local_abs"], row["local_rel"], row["replay_error"] = _replay(b, name, args, ref, sent)
            row["replayed_with"] = "reference arguments" if row["replay_error"] is None else None
            if row["replay_error"] is not None:
                chain["aligned"], row["mutant_kernel"] = False, None
            row["aligned"], row["propagated_abs"], row["propagated_rel"] = chain["aligned"], None, None
            if chain["aligned"]:
                # b's inputs of this call: its own output where an earlier call of a wrote this argument's memory
                # (a reshape is a view of it), a's value where none did (the image, a weight, a constant)
                own = [_written(v, written) for v in args[:-1]]
                out = b.call(b.kernel(name), [s if o is None else b.upload(o) for o, s in zip(own, sent, strict=True)],
                             ref.shape, ref.dtype)
                written[_address(args[-1])] = chain["last"] = out
                row["propagated_abs"], row["propagated_rel"] = _error(ref, out)
            rows.append(row)
            chain["calls"] += 1

        a_logits = a.run(batch, hook)
        b_logits = b.logits(batch)
        last = chain["last"]
        if chain["aligned"] and last is not None and last.size == b_logits.size:  # the chain ends where b's run does
            rows[-1]["chain_matches_run"] = bool(np.array_equal(last.reshape(b_logits.shape), b_logits))
        logits[image_id] = {"a": a_logits, "b": b_logits}
    return rows, logits


def _address(t) -> tuple[int, int]:
    """Where a tensor's data lies: its address and size (a reshape's view has both of its base's)."""
    return int(t.data_ptr()), int(np.prod(t.shape, dtype=np.int64)) * np.dtype(str(t.dtype)).itemsize


def _written(value, written: dict) -> np.ndarray | None:
    """b's output of the latest call that wrote the memory of `value` (an argument of a), shaped as `value`."""
    import tvm

    if not isinstance(value, tvm.runtime.Tensor):
        return None
    own = written.get(_address(value))
    return None if own is None else own.reshape(tuple(value.shape))


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
            row["replayed_with"] = "reference arguments" if row["replay_error"] is None else None
            if row["replay_error"] is not None and aligned and theirs.constants:
                # a kernel whose signature differs (the CPU schedule rules packed another target's weights
                # otherwise) runs on a's activations with its own constants: the code, not the packing, differs
                mixed = tuple(theirs.constants.get(i, v) for i, v in enumerate(args[:-1])) + (args[-1],)
                retry = _replay(b, other, mixed, ref)
                if retry[2] is None:
                    row["local_abs"], row["local_rel"], row["replay_error"] = retry
                    row["replayed_with"] = "own constants"
            rows.append(row)
            position += 1

        a_logits = a.run(batch, hook)
        logits[image_id] = {"a": a_logits, "b": b_logits}
    return rows, logits


def _replay(b: TracedBuild | DeviceBuild, name: str, args: tuple, ref: np.ndarray,
            sent: list | None = None) -> tuple[float | None, float | None, str | None]:
    """`b`'s kernel `name` on copies of `a`'s arguments of this call (`sent`: those copies, already on `b`'s
    device): its local error, or why it could not run."""
    try:
        fn = b.kernel(name)
    except Exception:  # TVM raises its own error type for a missing symbol
        return None, None, f"{b.path.name} has no kernel {name}"
    try:
        out = b.call(fn, sent if sent is not None else [b.upload(v) for v in args[:-1]], ref.shape, ref.dtype)
    except Exception as exc:  # a signature mismatch between the builds' kernels of one name
        return None, None, f"replay of {name} failed: {str(exc).splitlines()[0][:200]}"
    local_abs, local_rel = _error(ref, out)
    return local_abs, local_rel, None
