"""How a stage starts and ends: logging set up, user errors as one line, a timed summary."""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Callable

from pipeline.core import killpoints, params
from pipeline.core.errors import UserError


def setup_logging(name: str) -> logging.Logger:
    level = os.environ.get("PIPELINE_LOG", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    return logging.getLogger(name)


def run_stage(name: str, fn: Callable[[], None], params_file: str | None = "params.yaml") -> None:
    """Run a stage's body; a UserError ends it with one line on stderr and exit code 1. The whole of
    `params_file` is validated first (None: a command that reads no params.yaml)."""
    log = setup_logging(name)
    start = time.perf_counter()
    try:
        if params_file is not None:
            params.check_all(params_file)
        fn()
        killpoints.reached("outputs_written")
    except UserError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:
        if e.errno == 28:  # ENOSPC: say so plainly, the partial output is discarded on the next run
            print(f"{name}: error: disk full while writing {e.filename or 'output'}; free space and re-run",
                  file=sys.stderr)
            sys.exit(1)
        raise
    log.info("done in %.1f s", time.perf_counter() - start)
