"""Send everything a job prints, including C++ logs from TVM and ONNX Runtime, to its `log:` file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def job_log(path: str | os.PathLike | None) -> Iterator[None]:
    """Redirect file descriptors 1 and 2 (not just sys.stdout) so native libraries' output lands in the log.

    An exception is logged with its traceback. A ValueError (bad input: a corrupt model file, an empty
    dataset folder; deltamut's errors name the culprit) is then shown on the terminal as one line and the
    job exits 1, so the user reads the cause, not a traceback; anything else propagates as a bug would.
    """
    if not path:
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                            stream=sys.stderr, force=True)
        bad_input: ValueError | None = None
        try:
            yield
        except ValueError as exc:
            logging.exception("job failed")
            bad_input = exc
        except BaseException:
            logging.exception("job failed")
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    if bad_input is not None:
        print(f"deltamut: {bad_input}", file=sys.stderr, flush=True)
        raise SystemExit(1)
