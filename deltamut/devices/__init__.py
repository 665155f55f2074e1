"""Everything that executes a model, behind one interface.

PyTorch eager, ONNX Runtime and a TVM library (in this process or on a board over TVM RPC) are all a
`Backend`: a callable from one NCHW float32 batch to logits. So the frameworks axis and the devices axis of
a study are the same code path, and the runner's crash isolation covers all of them.
"""

from deltamut.devices.base import Backend, BackendError, open_backend

__all__ = ["Backend", "BackendError", "open_backend"]
