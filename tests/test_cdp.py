"""The DevTools client's websocket layer, without a browser: frames, masking, handshake, fragments."""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import pytest

from nodes.harness.cdp import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    CDPConnection,
    CDPError,
    Frame,
    WebSocket,
    WebSocketClosed,
    accept_key,
    apply_mask,
    decode_frame,
    encode_frame,
)

pytestmark = pytest.mark.unit

MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def payload_of(length: int) -> bytes:
    return bytes((index * 7 + 3) % 256 for index in range(length))


def test_masking_is_its_own_inverse() -> None:
    data = payload_of(1001)
    masked = apply_mask(data, MASK)
    assert masked != data
    assert apply_mask(masked, MASK) == data
    assert apply_mask(b"", MASK) == b""
    assert apply_mask(b"Hello", MASK) == bytes(a ^ b for a, b in zip(b"Hello", MASK * 2, strict=False))


def test_a_mask_has_four_bytes() -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        apply_mask(b"abc", b"xy")


def test_rfc_6455_examples() -> None:
    # RFC 6455, 5.7: a single-frame unmasked and masked text message "Hello", and the handshake key.
    assert encode_frame(OP_TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")
    assert encode_frame(OP_TEXT, b"Hello", mask=MASK) == bytes.fromhex("818537fa213d7f9f4d5158")
    assert decode_frame(bytes.fromhex("818537fa213d7f9f4d5158")) == (Frame(OP_TEXT, b"Hello"), 11)
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize(
    ("length", "length_byte", "header_size"),
    [(0, 0, 2), (5, 5, 2), (125, 125, 2), (126, 126, 4), (65535, 126, 4), (65536, 127, 10), (200_000, 127, 10)],
)
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_frames_round_trip(length: int, length_byte: int, header_size: int, masked: bool) -> None:
    payload = payload_of(length)
    data = encode_frame(OP_BINARY, payload, mask=MASK if masked else None)
    assert data[0] == 0x80 | OP_BINARY
    assert data[1] == (0x80 if masked else 0) | length_byte
    assert len(data) == header_size + (4 if masked else 0) + length
    if length_byte == 126:
        assert struct.unpack("!H", data[2:4])[0] == length
    if length_byte == 127:
        assert struct.unpack("!Q", data[2:10])[0] == length
    assert decode_frame(data) == (Frame(OP_BINARY, payload, fin=True), len(data))
    assert decode_frame(data + b"next frame") == (Frame(OP_BINARY, payload, fin=True), len(data))


@pytest.mark.parametrize("length", [3, 126, 70_000])
def test_an_incomplete_frame_decodes_to_none(length: int) -> None:
    data = encode_frame(OP_TEXT, payload_of(length), mask=MASK)
    cuts = {0, 1, 2, 3, 5, 9, 11, 13, len(data) // 2, len(data) - 1}
    for cut in sorted(cut for cut in cuts if cut < len(data)):
        assert decode_frame(data[:cut]) is None, cut


def test_fragments_keep_their_fin_bit_and_opcode() -> None:
    first = encode_frame(OP_TEXT, b"Hel", fin=False)
    last = encode_frame(OP_CONTINUATION, b"lo", fin=True)
    assert decode_frame(first) == (Frame(OP_TEXT, b"Hel", fin=False), len(first))
    assert decode_frame(last) == (Frame(OP_CONTINUATION, b"lo", fin=True), len(last))


def test_reserved_bits_and_bad_opcodes_are_refused() -> None:
    with pytest.raises(ValueError, match="reserved bits"):
        decode_frame(bytes([0xC1, 0x00]))
    with pytest.raises(ValueError, match="opcode"):
        encode_frame(16, b"")


# -- a websocket client against a small server in a thread ---------------------------------------------
class FrameServer:
    """A one-connection websocket server: answers the handshake, then runs ``script(conn, frames)``."""

    def __init__(self, script: Callable[[socket.socket, Callable[[], Frame]], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.script = script
        self.received: list[Frame] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                buffer = bytearray()
                while b"\r\n\r\n" not in buffer:
                    buffer += conn.recv(4096)
                head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
                buffer = bytearray(rest)
                key = next(
                    line.split(":", 1)[1].strip()
                    for line in head.decode().split("\r\n")
                    if line.lower().startswith("sec-websocket-key:")
                )
                conn.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
                )

                def next_frame() -> Frame:
                    while True:
                        parsed = decode_frame(buffer)
                        if parsed is not None:
                            frame, used = parsed
                            del buffer[:used]
                            self.received.append(frame)
                            return frame
                        chunk = conn.recv(1 << 16)
                        if not chunk:
                            raise ConnectionError("client went away")
                        buffer.extend(chunk)

                self.script(conn, next_frame)
        except BaseException as error:  # reported by the test through .error
            self.error = error
        finally:
            self.listener.close()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/devtools/page/test"

    def join(self) -> None:
        self.thread.join(timeout=10)
        if self.error is not None:
            raise self.error


@pytest.fixture
def serve() -> Iterator[Callable[..., FrameServer]]:
    servers: list[FrameServer] = []

    def start(script: Callable[[socket.socket, Callable[[], Frame]], None]) -> FrameServer:
        servers.append(FrameServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.listener.close()


def test_websocket_sends_masked_text_and_joins_fragments(serve: Callable[..., FrameServer]) -> None:
    big = os.urandom(300_000)

    def script(conn: socket.socket, next_frame: Callable[[], Frame]) -> None:
        frame = next_frame()
        conn.sendall(encode_frame(OP_TEXT, frame.payload.upper()))  # echo, unmasked as a server sends
        conn.sendall(encode_frame(OP_PING, b"are you there"))
        conn.sendall(encode_frame(OP_TEXT, b"frag", fin=False))
        conn.sendall(encode_frame(OP_CONTINUATION, b"men", fin=False))
        conn.sendall(encode_frame(OP_CONTINUATION, "ted ✓".encode(), fin=True))
        conn.sendall(encode_frame(OP_BINARY, big))
        next_frame()  # the pong
        conn.sendall(encode_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        next_frame()  # the client's close answer

    server = serve(script)
    ws = WebSocket(server.url, timeout=10)
    ws.send_text("hello")
    assert ws.recv(timeout=10) == "HELLO"
    assert ws.recv(timeout=10) == "fragmented ✓"
    assert ws.recv(timeout=10) == big
    with pytest.raises(WebSocketClosed, match="bye"):
        ws.recv(timeout=10)
    assert ws.closed
    server.join()
    text, pong, close = server.received
    assert (text.opcode, text.payload) == (OP_TEXT, b"hello")
    assert (pong.opcode, pong.payload) == (OP_PONG, b"are you there")
    assert close.opcode == OP_CLOSE and close.payload == struct.pack("!H", 1000)


def test_websocket_recv_times_out(serve: Callable[..., FrameServer]) -> None:
    done = threading.Event()
    server = serve(lambda conn, next_frame: done.wait(5))
    ws = WebSocket(server.url, timeout=10)
    with pytest.raises(TimeoutError):
        ws.recv(timeout=0.2)
    done.set()
    ws.close()
    server.join()


def test_a_wrong_accept_key_fails_the_handshake() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n")
        listener.close()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with pytest.raises(ConnectionError, match="Sec-WebSocket-Accept"):
        WebSocket(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
    thread.join(timeout=10)


def test_cdp_call_returns_its_result_and_queues_events(serve: Callable[..., FrameServer]) -> None:
    def script(conn: socket.socket, next_frame: Callable[[], Frame]) -> None:
        for _ in range(2):
            command = json.loads(next_frame().payload)
            event = {"method": "Page.loadEventFired", "params": {"timestamp": 1.5}}
            conn.sendall(encode_frame(OP_TEXT, json.dumps(event).encode()))
            if command["method"] == "Broken.method":
                answer = {"id": command["id"], "error": {"code": -32601, "message": "not found"}}
            else:
                answer = {"id": command["id"], "result": {"echo": command["params"]}}
            conn.sendall(encode_frame(OP_TEXT, json.dumps(answer).encode()))
        next_frame()  # close

    server = serve(script)
    cdp = CDPConnection(server.url, timeout=10)
    assert cdp.call("Runtime.evaluate", {"expression": "1 + 1"}) == {"echo": {"expression": "1 + 1"}}
    with pytest.raises(CDPError, match="not found"):
        cdp.call("Broken.method")
    assert len(cdp.events) == 2
    assert cdp.wait_event("Page.loadEventFired", timeout=1) == {"timestamp": 1.5}
    assert len(cdp.events) == 1
    cdp.close()
    server.join()
