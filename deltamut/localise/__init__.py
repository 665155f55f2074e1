"""Localisation: where a disagreement starts (which kernel, which ONNX node) and how it travels to the logits.

`kernels` records every kernel's output of two builds without perturbing either, `naming` names kernels in
ONNX terms by value, `profile` reads the root, the error growth and masking from that, `witness` picks the
images and the predicate from a pair's per-image table, `plan` selects the probes of a study and `stage` is
the rule's entry point.
"""
