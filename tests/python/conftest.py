"""Shared fixtures for the Python client tests: the real pulsebase binary on a copy of
tests/client_app, dev-issuer tokens, and bounded waits.

The server is `pulsebase dev --port 0` started as a user would; its port comes from the ready
line on stdout; it is stopped by its PID (SIGKILL) when the test ends, pass or fail.

Every wait is bounded by `within`: the Python client's calls block in Rust without a timeout
of their own, but check for signals every second, so a SIGALRM ends a stuck call.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("PULSEBASE_BIN") or str(ROOT / "target" / "release" / "pulsebase")
APP = ROOT / "tests" / "client_app"

# The bound on one wait for the server or the client, in seconds.
WAIT = 15.0
# What a client gets for a mutation called as an action.
NOT_AN_ACTION = "'messages:send' is a mutation, not an action; call it as a mutation"
READY = re.compile(r"http://127\.0\.0\.1:(\d+)")


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Raises TimeoutError naming `what` if the block takes longer than `seconds`."""

    def on_alarm(signum: int, frame: Any) -> None:
        raise TimeoutError(f"timed out after {seconds} s waiting for {what}")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def until(subscription: Any, accept: Callable[[Any], bool], what: str, seconds: float = WAIT) -> Any:
    """Reads `subscription` until a result satisfies `accept` and returns it. An error the
    subscription raises (such as ConvexError) counts as a result."""
    seen: list[str] = []
    try:
        with within(seconds, what):
            for _ in range(10_000):
                try:
                    result: Any = next(subscription)
                except TimeoutError:
                    raise
                except Exception as error:  # noqa: BLE001 - the query's own error
                    result = error
                if accept(result):
                    return result
                seen.append(repr(result)[:200])
    except TimeoutError as error:
        raise TimeoutError(f"{error}; last results: {seen[-5:]}") from None
    raise AssertionError(f"no result satisfied {what}; last results: {seen[-5:]}")


def failure(call: Callable[[], Any], what: str) -> Exception:
    """The exception `call()` raises (bounded by WAIT); fails the test if it returns."""
    with within(WAIT, what):
        try:
            value = call()
        except TimeoutError:
            raise
        except Exception as error:  # noqa: BLE001 - the call's own error
            return error
    raise AssertionError(f"{what} was expected to fail but returned {value!r}")


class Server:
    """A running `pulsebase dev` on a temporary copy of tests/client_app."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="pulsebase-py-")
        shutil.copytree(
            APP,
            self.dir,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("_generated", ".pulsebase"),
        )
        self.proc: Optional[subprocess.Popen[str]] = None
        self.output: list[str] = []
        self.port = 0
        self.url = ""

    def start(self, port: int = 0) -> "Server":
        self.proc = subprocess.Popen(
            [BIN, "dev", "--dir", self.dir, "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ports: "queue.Queue[int]" = queue.Queue()
        proc = self.proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.output.append(line)
                match = READY.search(line)
                if match:
                    ports.put(int(match.group(1)))

        threading.Thread(target=read, daemon=True).start()
        try:
            self.port = ports.get(timeout=30)
        except queue.Empty:
            self.stop()
            raise AssertionError("pulsebase printed no ready line:\n" + "".join(self.output))
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        """Kills the process and starts it again on the same port and data, as after a crash."""
        port = self.port
        self.stop()
        self.start(port)
        assert self.port == port, "restarted on the same port"

    def token(self, sub: str, name: Optional[str] = None, ttl: int = 3600) -> str:
        """A token from the dev issuer (`POST /dev-issuer/token`), as a front-end gets one."""
        body: dict[str, Any] = {"sub": sub, "ttl": ttl}
        if name is not None:
            body["name"] = name
        request = urllib.request.Request(
            f"{self.url}/dev-issuer/token",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return json.load(response)["token"]

    def logs(self) -> str:
        return "".join(self.output)

    def wait_for_log(self, text: str, seconds: float = WAIT) -> None:
        """Waits until the server has printed `text`."""
        with within(seconds, f"the server to log {text!r}"):
            while text not in self.logs():
                time.sleep(0.05)

    def dispose(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def server() -> Iterator[Server]:
    started = Server().start()
    try:
        yield started
    finally:
        started.dispose()
