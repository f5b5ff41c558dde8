"""The coalescing transport never reorders, loses or delays bytes past a response."""

import asyncio
import socket

from api.http_protocol import CoalescingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"


class Recorder:
    """The transport interface, recording what reaches the socket layer."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_head_and_body_leave_in_one_write():
    recorder = Recorder()
    transport = CoalescingTransport(recorder)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert recorder.writes == []
    transport.write(b"hello")
    assert recorder.writes == [HEAD + b"hello"]
    transport.flush()
    assert recorder.writes == [HEAD + b"hello"]


def test_head_without_body_is_flushed_and_close_flushes_first():
    recorder = Recorder()
    transport = CoalescingTransport(recorder)  # type: ignore[arg-type]
    transport.write(HEAD)
    transport.flush()  # what on_response_complete does, e.g. after a HEAD request
    assert recorder.writes == [HEAD]
    transport.write(HEAD)
    transport.close()
    assert recorder.writes == [HEAD, HEAD] and recorder.closed


def test_other_writes_pass_through_in_order():
    recorder = Recorder()
    transport = CoalescingTransport(recorder)  # type: ignore[arg-type]
    chunks: list[bytes | bytearray | memoryview] = [
        b"5\r\nhello\r\n",
        bytearray(b"0\r\n\r\n"),
        memoryview(b"plain"),
    ]
    for chunk in chunks:
        transport.write(chunk)
    assert recorder.writes == [bytes(c) for c in chunks]
    big = b"x" * (70 * 1024)
    transport.write(HEAD)
    transport.write(big)
    assert recorder.writes[-2:] == [HEAD, big]  # large bodies are not copied to join
    assert transport.get_extra_info("peername") == "info:peername"


def test_over_a_real_socket():
    async def run() -> bytes:
        left, right = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, left)
        wrapped = CoalescingTransport(transport)
        wrapped.write(HEAD)
        wrapped.write(b"hello")
        wrapped.write(HEAD)
        wrapped.close()
        await asyncio.sleep(0.05)
        right.setblocking(False)
        data = right.recv(4096)
        right.close()
        return data

    assert asyncio.run(run()) == HEAD + b"hello" + HEAD
