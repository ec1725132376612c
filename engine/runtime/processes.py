"""The processes `journeyman up` runs: which ports they get, how one is stopped, how one is
seen to be ready."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess

import httpx
from journeyman.engine.runtime.stack import free_port


class PartFailed(RuntimeError):
    pass


class PortTaken(PartFailed):
    """A port asked for is in use."""


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As a server would bind it: a port only in TIME_WAIT counts as free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def port_or_free(preferred: int) -> int:
    """`preferred` when it is free on 127.0.0.1, else any free port (0 means any)."""
    if preferred and port_is_free(preferred):
        return preferred
    return free_port()


def claim_port(port: int, what: str, setting: str) -> int:
    """`port` if free (0: any free port); a taken port is refused, never swapped."""
    if port == 0:
        return free_port()
    if not port_is_free(port):
        raise PortTaken(
            f"the {what} port {port} is already in use{_listener(port)}; stop that "
            f"process, or set {setting} to a free port (0 picks any free port)"
        )
    return port


def _listener(port: int) -> str:
    """' by pid 42 (uvicorn app:app)' when the system tells who listens on `port`."""
    try:
        import psutil

        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
                command = " ".join(psutil.Process(conn.pid).cmdline())[:200]
                return f" by pid {conn.pid} ({command})"
    except Exception:
        pass
    return ""


def pick_port(asked: int | None, preferred: int, what: str, option: str) -> int:
    """A port asked for must be free; without one, `preferred` if free, else any."""
    return port_or_free(preferred) if asked is None else claim_port(asked, what, option)


def stop_process(process: subprocess.Popen[bytes], grace: float = 2.0) -> None:
    """SIGINT (the part finishes what it is doing), then SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    if grace > 0:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait(5)


def dismiss_watchdog(watchdog: subprocess.Popen[bytes]) -> None:
    """Tell the PostgreSQL watchdog it is not needed (SIGTERM while `up` lives)."""
    with contextlib.suppress(ProcessLookupError):
        watchdog.terminate()
    try:
        watchdog.wait(2)
    except subprocess.TimeoutExpired:
        watchdog.kill()
        watchdog.wait(2)


async def healthy(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2) as client:
        r = await client.get(url)
        return r.status_code == 200


async def task_queue_has_poller(address: str, namespace: str, task_queue: str) -> bool:
    """Does Temporal see a worker polling `task_queue` for workflow tasks?"""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
    from temporalio.client import Client

    client = await Client.connect(address, namespace=namespace)
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return len(response.pollers) > 0


def redact(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, *parts[2:]))
    return url
