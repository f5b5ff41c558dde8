"""RSS and descriptors of real processes, from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from loadtests.procs import sample

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


def test_descriptors_are_told_apart():
    before = sample(os.getpid())
    read, write = os.pipe()
    sock = socket.socket()
    try:
        during = sample(os.getpid())
    finally:
        os.close(read)
        os.close(write)
        sock.close()
    assert during.other_fds == before.other_fds + 2
    assert during.sockets == before.sockets + 1
    assert during.fds == during.sockets + during.other_fds


def test_rss_follows_memory_a_process_touches():
    code = (
        "import sys; block = bytearray(64 * 2**20); sys.stdout.write('x'); sys.stdout.flush(); "
        "sys.stdin.read()"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.read(1) == b"x"
        assert sample(child.pid).rss_mib > 64
    finally:
        child.communicate(b"")


def test_a_gone_process_is_a_lookup_error():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(ProcessLookupError):
        sample(child.pid)
