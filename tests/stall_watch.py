"""A test that runs far past any test's time fails with a dump of where it waits, instead of
holding the whole run until CI's limit.

After `JOURNEYMAN_TEST_STALL_SECONDS` (default 600; the slowest test takes under 3 minutes)
the watcher prints every asyncio task's stack and every thread's, then cancels what the
event loop is running for the test (its body or a fixture), so the test fails with that
dump as its captured output and the run goes on. If the loop does not answer within a
minute (something blocks it), the watcher interrupts the run.
"""

from __future__ import annotations

import _thread
import asyncio
import faulthandler
import io
import os
import sys
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

STALL_SECONDS = float(os.environ.get("JOURNEYMAN_TEST_STALL_SECONDS", "600"))
GRACE_SECONDS = 60.0
DUMPS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    done = threading.Event()
    threading.Thread(
        target=_watch, args=(item.nodeid, done), name="stall-watch", daemon=True
    ).start()
    try:
        yield
    finally:
        done.set()


def _watch(nodeid: str, done: threading.Event) -> None:
    if done.wait(STALL_SECONDS):
        return
    main = sys._current_frames().get(threading.main_thread().ident or 0)
    loop, awaited = _loop_and_awaited(main)
    dump = _dump(nodeid, loop)
    print(dump, file=sys.stderr, flush=True)  # captured: shown with the failure
    DUMPS.mkdir(exist_ok=True)
    (DUMPS / f"stalled-{os.getpid()}.txt").write_text(dump)
    if loop is not None and awaited is not None:
        loop.call_soon_threadsafe(awaited.cancel)
    if done.wait(GRACE_SECONDS):
        return
    faulthandler.dump_traceback(file=sys.__stderr__, all_threads=True)
    _thread.interrupt_main()


def _loop_and_awaited(
    frame: FrameType | None,
) -> tuple[asyncio.AbstractEventLoop | None, asyncio.Future | None]:
    """The main thread's event loop and the future its `run_until_complete` waits on."""
    while frame is not None:
        if frame.f_code.co_name == "run_until_complete":
            loop, future = frame.f_locals.get("self"), frame.f_locals.get("future")
            if isinstance(loop, asyncio.AbstractEventLoop) and isinstance(future, asyncio.Future):
                return loop, future
        frame = frame.f_back
    return None, None


def _dump(nodeid: str, loop: asyncio.AbstractEventLoop | None) -> str:
    out = io.StringIO()
    print(f"=== {nodeid} still running after {STALL_SECONDS:.0f} s ===", file=out)
    tasks: list[asyncio.Task] = []
    for _ in range(5):  # the task set may change while it is read from this thread
        try:
            tasks = list(asyncio.all_tasks(loop)) if loop is not None else []
            break
        except RuntimeError:
            continue
    for task in tasks:
        print(f"--- task {task.get_name()}: {task.get_coro()!r}", file=out)
        task.print_stack(file=out)
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {ident}", file=out)
        out.write("".join(traceback.format_stack(frame)))
    return out.getvalue()
