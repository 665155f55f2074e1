"""Vision Transformers in plain torch, with torchvision's parameter names (conv_proj, encoder.layers.
encoder_layer_0.self_attention, heads.head), so a torchvision `vit_b_16` `.pth` loads into `vit_b_16`.

The zoo's one architecture whose classifier layers multiply two activations: attention's softmax(QK^T) is a
square (tokens x tokens) input of a matmul, which is where MutateNN's transpose of a dense layer's input 0
(mnn02) has a site at batch 1. Every CNN's dense input is (1, C) and has none.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class EncoderBlock(nn.Module):
    def __init__(self, heads: int, hidden: int, mlp: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden, eps=1e-6)
        self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = nn.LayerNorm(hidden, eps=1e-6)
        # torchvision's MLPBlock: Linear, GELU, Dropout, Linear, Dropout (parameters mlp.0 and mlp.3)
        self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, hidden),
                                 nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        y, _ = self.self_attention(y, y, y, need_weights=False)
        x = x + self.dropout(y)
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, seq_length: int, layers: int, heads: int, hidden: int, mlp: int):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(heads, hidden, mlp)) for i in range(layers)))
        self.ln = nn.LayerNorm(hidden, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class VisionTransformer(nn.Module):
    def __init__(self, image_size: int, patch: int, layers: int, heads: int, hidden: int, mlp: int,
                 num_classes: int = 1000):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"a ViT with {patch}-pixel patches needs an input size divisible by {patch}, "
                             f"got {image_size}")
        self.patch, self.hidden = patch, hidden
        self.conv_proj = nn.Conv2d(3, hidden, kernel_size=patch, stride=patch)
        self.class_token = nn.Parameter(torch.zeros(1, 1, hidden))
        self.encoder = Encoder((image_size // patch) ** 2 + 1, layers, heads, hidden, mlp)
        self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden, num_classes)))
        # torchvision zeroes the head (it is meant to be trained); seeded random weights need one that
        # tells images apart
        nn.init.normal_(self.heads.head.weight, std=0.02)
        nn.init.zeros_(self.heads.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x)
        x = x.reshape(x.shape[0], self.hidden, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


def vit_b_16(image_size: int = 224) -> VisionTransformer:
    """torchvision's ViT-B/16: 12 layers, 12 heads, 768 wide."""
    return VisionTransformer(image_size, 16, layers=12, heads=12, hidden=768, mlp=3072)


def vit_ti_16(image_size: int = 224) -> VisionTransformer:
    """The DeiT-Tiny shape (12 layers, 3 heads, 192 wide) under torchvision's names: a ViT that compiles and
    runs in seconds on a laptop."""
    return VisionTransformer(image_size, 16, layers=12, heads=3, hidden=192, mlp=768)
