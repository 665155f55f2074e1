"""Export: a torch model -> one checked ONNX file (the start of every TVM variant) or an ExportedProgram."""

from deltamut.export.onnx_export import check_onnx, export_model
from deltamut.export.program_export import export_program

__all__ = ["check_onnx", "export_model", "export_program"]
