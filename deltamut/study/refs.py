"""The names of things a study compares: a model or one of its conversions, and a variant id.

A conversion of a model (DeltaNN's other road from PyTorch to a runtime) lives in its own result tree,
`results/{model}@{conversion}/`, so that every rule serves it unchanged; `ModelRef` is the one place that
spells and parses that name. A variant id names one result of a model: a framework (`torch`,
`onnxruntime@<conversion>`) or a TVM build (`tvm/<opt>/<mutant>/<device>`, `tvm@<conversion>/...`);
`variant_id` and `parse_variant_id` are the one place that spells and parses those.
"""

from __future__ import annotations

from dataclasses import dataclass

ORIGINAL = "original"  # the unmutated module's mutant name
PRIMARY = "onnx"  # the conversion every optimisation and mutant starts from: `export:` (dynamo exporter)
FLOAT64 = "torch64"  # PyTorch in float64: the numeric noise floor of float32, not a study framework
TVM = "tvm"
CONVERSION_SEP = "@"  # model names cannot contain it (schema)
BATCH_SEP = "+b"  # nor this: `lite0+b8` is the model built for batch 8, for the throughput study


@dataclass(frozen=True)
class ModelRef:
    """A model of the study, one of its conversions (`lite0@torch-export`), or the model built for a batch size
    other than 1 (`lite0+b8`, the throughput study's). Each has a result tree of its own."""

    base: str
    conversion: str = PRIMARY
    batch: int = 1

    @classmethod
    def parse(cls, name: str) -> ModelRef:
        head, sep, batch = str(name).rpartition(BATCH_SEP)
        if not (sep and batch.isdigit()):
            head, batch = str(name), "1"
        base, _, conversion = head.partition(CONVERSION_SEP)
        return cls(base, conversion or PRIMARY, int(batch))

    @property
    def is_conversion(self) -> bool:
        return self.conversion != PRIMARY

    @property
    def is_derived(self) -> bool:
        """A conversion or a batched build: the model itself is studied through its primary tree only."""
        return self.is_conversion or self.batch != 1

    def converted(self, conversion: str) -> ModelRef:
        return ModelRef(self.base, conversion, self.batch)

    def batched(self, batch: int) -> ModelRef:
        return ModelRef(self.base, self.conversion, int(batch))

    def __str__(self) -> str:
        name = f"{self.base}{CONVERSION_SEP}{self.conversion}" if self.is_conversion else self.base
        return f"{name}{BATCH_SEP}{self.batch}" if self.batch != 1 else name


def _head(name: str, conversion: str) -> str:
    return name if conversion == PRIMARY else f"{name}{CONVERSION_SEP}{conversion}"


def framework_id(framework: str, conversion: str = PRIMARY) -> str:
    """`onnxruntime`, or `onnxruntime@legacy-opset13` for a conversion."""
    return _head(framework, conversion)


def variant_id(opt: str, mutant: str, device: str, conversion: str = PRIMARY) -> str:
    """`tvm/<opt>/<mutant>/<device>`, or `tvm@<conversion>/...` for a conversion."""
    return f"{_head(TVM, conversion)}/{opt}/{mutant}/{device}"


def parse_variant_id(vid: str) -> dict[str, str]:
    """The coordinates of a variant id (framework, conversion, opt, mutant, device); empty strings where none
    apply, and `conversion` empty for a plain framework id."""
    parts = str(vid).split("/")
    framework, _, conversion = parts[0].partition(CONVERSION_SEP)
    if len(parts) == 4 and framework == TVM:
        return {"framework": TVM, "conversion": conversion, "opt": parts[1], "mutant": parts[2], "device": parts[3]}
    return {"framework": framework, "conversion": conversion, "opt": "", "mutant": "", "device": ""}
