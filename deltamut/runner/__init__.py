"""Run a dataset through a backend in an isolated child process with time limits.

A mutant may read out of bounds, abort, hang or return NaN; the seed tools died with it. Here the
backend lives in a worker process: the parent watches it, turns a signal, a timeout or an exception into
a per-image status, restarts the worker for the remaining images, and always writes a result file.
"""

from deltamut.runner.outputs import Outputs, load_outputs, save_outputs
from deltamut.runner.run import RunSettings, run_dataset

__all__ = ["Outputs", "RunSettings", "load_outputs", "run_dataset", "save_outputs"]
