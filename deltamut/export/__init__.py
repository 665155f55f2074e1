"""Export: a torch model -> one checked ONNX file, the start of every TVM variant."""

from deltamut.export.onnx_export import check_onnx, export_model

__all__ = ["check_onnx", "export_model"]
