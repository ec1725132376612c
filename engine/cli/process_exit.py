"""How a `journeyman` process ends once it has used a Temporal client.

The Temporal SDK's Rust threads hand results to Python under the GIL. When the main thread
exits right after such a result, a Rust thread may still be releasing the GIL while the
interpreter finalises, and CPython aborts the process ("Fatal Python error:
PyGILState_Release: thread state ... must be current when releasing", SIGABRT;
temporalio/sdk-python#300). Short-lived commands such as `journeyman scheduler` hit this
about one run in six on a busy machine, which is how `journeyman up` failed to start with
"scheduler exited with -6".

So a process that loaded the Temporal bridge does its orderly shutdown itself — waits for its
threads, runs the `atexit` handlers (the embedded PostgreSQL's among them), collects garbage
(closing unreferenced files), flushes stdout and stderr — and then leaves with `os._exit`,
skipping only the interpreter's own finalisation, where the abort happens.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
import traceback
from collections.abc import Callable
from typing import NoReturn

_BRIDGE = "temporalio.bridge.temporal_sdk_bridge"


def run_command(app: Callable[[], object]) -> NoReturn:
    """Run `app` (a typer app) and end the process with its exit code."""
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = _code(stop.code)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        traceback.print_exc()
        code = 1
    if _BRIDGE not in sys.modules:
        sys.exit(code)
    leave(code)


def leave(code: int) -> NoReturn:
    """Shut down in order, then exit without finalising the interpreter."""
    shutdown_threads = getattr(threading, "_shutdown", None)
    if shutdown_threads is not None:
        with contextlib.suppress(Exception):
            shutdown_threads()  # what the interpreter does first: join non-daemon threads
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    if run_exitfuncs is not None:
        run_exitfuncs()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
