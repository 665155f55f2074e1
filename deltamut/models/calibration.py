"""Batch-norm statistics for randomly initialised networks.

Fresh BatchNorm layers hold mean 0 and variance 1, so a random deep network in eval mode scales its
activations by the product of every layer's gain: measured here, logits of about 1e-9 (MobileNetV2) up to
1e12 (Inception v3). Such outputs make compiler comparisons meaningless (everything is "equal" or
everything overflows). Estimating the statistics on one seeded batch of noise makes each normalised layer
unit-scale, the way trained networks are, while staying deterministic.
"""

from __future__ import annotations

import torch
from torch import nn


def calibrate_batchnorm(module: nn.Module, input_size: int, seed: int, batch: int = 2) -> None:
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, input_size, input_size, generator=generator)
    module.train()
    with torch.no_grad():
        module(x)
    module.eval()
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
