"""`transformers serve` on loopback, for the tests that talk to a real OpenAI-compatible server
(only the model's weights are toy ones; the server, the HTTP and the chat template are real)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def transformers_serve(
    model: Path, log_path: Path, *options: str, timeout: float = 180
) -> Iterator[str]:
    """Serve `model` on CPU until the block ends; yields the server's /v1 URL. The test fails
    with the server's log if it does not answer /health within `timeout` seconds."""
    executable = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    if not Path(executable).is_file():  # it comes with transformers: a broken install
        pytest.fail(f"the transformers CLI is missing (looked for {executable})")
    port = free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [executable, "serve", str(model), "--host", "127.0.0.1", "--port", str(port),
             "--device", "cpu", *options],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"transformers serve did not start:\n{log_path.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
