"""Graph passes and lowering, each under the configuration's PassContext."""

from __future__ import annotations

from deltamut.compiler.optconfig import OptConfig


def optimise_graph(mod, opt: OptConfig):
    """Run the configuration's graph-level passes (the compile stage); ops stay visible for mutations."""
    import tvm
    from tvm import relax

    with opt.pass_context():
        seq = [getattr(relax.transform, name)() for name in opt.passes]
        return tvm.transform.Sequential(seq)(mod) if seq else mod


def lower(mod, opt: OptConfig):
    """Legalise to TIR and (optionally) fuse: what the `zero` pipeline does, with its steps switchable.

    Kernel-level mutations act on the PrimFuncs this produces, so they reach every target's code.
    """
    import tvm
    from tvm import relax

    steps = [relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern()]
    if opt.fold_constants:
        steps.append(relax.transform.FoldConstant())
    if opt.fuse:
        steps += [relax.transform.FuseOps(), relax.transform.FuseTIR()]
    with opt.pass_context():
        return tvm.transform.Sequential(steps)(mod)
