"""A private ``redis-server`` for a benchmark: a free port, no persistence, stopped after.

Shared by ``bench_cache.py`` and ``bench_redis.py``; run as the fleet tier runs it (no
RDB snapshots, no AOF), so what is measured is Redis serving, not Redis saving.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class LocalRedis:
    """``redis-server`` on a free loopback port, started by the constructor.

    Raises:
        FileNotFoundError: ``redis-server`` is not installed (the message says what to
            install).
    """

    def __init__(self, workdir: Path, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server (apt-get install redis-server)")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server."""
        self.process.terminate()
        self.process.wait()
