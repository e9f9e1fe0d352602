"""Drive a headless Chromium over the DevTools protocol (CDP), with the standard library only.

::

    with Chromium() as browser:                     # /usr/bin/chromium --headless ... (fresh profile)
        page = browser.new_page()                   # a tab, and a CDP connection to it
        page.navigate("http://127.0.0.1:8188/")
        page.wait_for("window.app !== undefined")
        print(page.evaluate("document.title"))
        Path("shot.png").write_bytes(page.screenshot())

Three layers, each small enough to read: websocket frames (:func:`encode_frame`, :func:`decode_frame`),
a websocket client (:class:`WebSocket`: handshake, masking, fragments, ping/pong, close), and CDP on top
(:class:`CDPConnection`: JSON commands with ids, events queued; :class:`Page`; :class:`Chromium`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .process import signal_group

# -- websocket frames (RFC 6455) ----------------------------------------------------------------------
OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024  # a full-page screenshot of a big canvas stays far below this


@dataclass(frozen=True)
class Frame:
    """One websocket frame: ``fin`` marks the last fragment of a message; ``payload`` is unmasked."""

    opcode: int
    payload: bytes
    fin: bool = True


def apply_mask(payload: bytes, mask: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (masking and unmasking are the same operation)."""
    if len(mask) != 4:
        raise ValueError(f"a websocket mask has 4 bytes, got {len(mask)}")
    if not payload:
        return b""
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """The bytes of one frame. Pass a 4-byte ``mask`` for client-to-server frames (RFC 6455 requires it)."""
    if not 0 <= opcode <= 0xF:
        raise ValueError(f"a websocket opcode is 0..15, got {opcode}")
    header = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    length = len(payload)
    if length < 126:
        header.append(mask_bit | length)
    elif length < 1 << 16:
        header.append(mask_bit | 126)
        header += struct.pack("!H", length)
    else:
        header.append(mask_bit | 127)
        header += struct.pack("!Q", length)
    if mask is None:
        return bytes(header) + payload
    return bytes(header) + mask + apply_mask(payload, mask)


def decode_frame(data: bytes | bytearray) -> tuple[Frame, int] | None:
    """Parse one frame from the start of ``data``: ``(frame, bytes used)``, or None while it is incomplete.

    Masked frames (as a server receives them) are unmasked; unmasked ones (as a client receives them)
    are returned as they are.
    """
    if len(data) < 2:
        return None
    first, second = data[0], data[1]
    if first & 0x70:
        raise ValueError(f"websocket frame uses reserved bits (first byte {first:#04x}); no extension was agreed")
    length = second & 0x7F
    offset = 2
    if length == 126:
        if len(data) < offset + 2:
            return None
        (length,) = struct.unpack_from("!H", data, offset)
        offset += 2
    elif length == 127:
        if len(data) < offset + 8:
            return None
        (length,) = struct.unpack_from("!Q", data, offset)
        offset += 8
    mask = None
    if second & 0x80:
        if len(data) < offset + 4:
            return None
        mask = bytes(data[offset : offset + 4])
        offset += 4
    if len(data) < offset + length:
        return None
    payload = bytes(data[offset : offset + length])
    if mask is not None:
        payload = apply_mask(payload, mask)
    return Frame(opcode=first & 0x0F, payload=payload, fin=bool(first & 0x80)), offset + length


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` a server must answer to the client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()


class WebSocketClosed(ConnectionError):
    """The peer closed the websocket (or the TCP connection ended)."""


class WebSocket:
    """A blocking websocket client for ``ws://`` URLs: text messages out, whole messages in."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "ws" or not parsed.hostname:
            raise ValueError(f"only ws://host:port/path URLs are supported, got {url!r}")
        self.url = url
        self._sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=timeout)
        self._buffer = bytearray()
        self.closed = False
        path = parsed.path or "/"
        if parsed.query:
            path += "?" + parsed.query
        try:
            self._handshake(parsed.netloc, path)
        except BaseException:
            self._sock.close()
            raise

    def _handshake(self, host: str, path: str) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )  # no Origin header: Chromium refuses DevTools connections from origins it was not told to allow
        self._sock.sendall(request.encode())
        while b"\r\n\r\n" not in self._buffer:
            self._fill()
        head, _, rest = bytes(self._buffer).partition(b"\r\n\r\n")
        self._buffer = bytearray(rest)
        lines = head.decode("latin-1").split("\r\n")
        if len(lines[0].split()) < 2 or lines[0].split()[1] != "101":
            raise ConnectionError(f"websocket handshake with {self.url} failed: {lines[0]!r}")
        headers = {
            name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])
        }
        if headers.get("sec-websocket-accept") != accept_key(key):
            raise ConnectionError(f"websocket handshake with {self.url}: wrong Sec-WebSocket-Accept")

    def _fill(self) -> None:
        chunk = self._sock.recv(1 << 20)
        if not chunk:
            self.closed = True
            raise WebSocketClosed(f"{self.url}: connection closed by the peer")
        self._buffer += chunk

    def _send_frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        self._sock.sendall(encode_frame(opcode, payload, fin=fin, mask=os.urandom(4)))

    def send_text(self, text: str) -> None:
        """Send one text message (a single masked frame)."""
        if self.closed:
            raise WebSocketClosed(f"{self.url}: websocket is closed")
        self._send_frame(OP_TEXT, text.encode("utf-8"))

    def _read_frame(self) -> Frame:
        while True:
            parsed = decode_frame(self._buffer)
            if parsed is not None:
                frame, used = parsed
                del self._buffer[:used]
                return frame
            self._fill()

    def recv(self, timeout: float | None = None) -> str | bytes:
        """The next whole message (fragments joined): ``str`` for text, ``bytes`` for binary.

        Answers pings on the way; raises ``TimeoutError`` after ``timeout`` seconds without a message
        and :class:`WebSocketClosed` when the peer closes.
        """
        self._sock.settimeout(timeout)
        opcode: int | None = None
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                frame = self._read_frame()
                if frame.opcode == OP_PING:
                    self._send_frame(OP_PONG, frame.payload)
                    continue
                if frame.opcode == OP_PONG:
                    continue
                if frame.opcode == OP_CLOSE:
                    self._answer_close(frame.payload)
                    raise WebSocketClosed(
                        f"{self.url}: closed by the peer ({frame.payload[2:].decode(errors='replace')})"
                    )
                if frame.opcode == OP_CONTINUATION:
                    if opcode is None:
                        raise ConnectionError(f"{self.url}: continuation frame without a first fragment")
                elif opcode is not None:
                    raise ConnectionError(f"{self.url}: new message (opcode {frame.opcode}) inside a fragmented one")
                else:
                    opcode = frame.opcode
                parts.append(frame.payload)
                size += len(frame.payload)
                if size > MAX_MESSAGE_BYTES:
                    raise ConnectionError(f"{self.url}: message larger than {MAX_MESSAGE_BYTES} bytes")
                if frame.fin:
                    data = b"".join(parts)
                    return data.decode("utf-8") if opcode == OP_TEXT else data
        except TimeoutError:
            raise TimeoutError(f"{self.url}: no message within {timeout} s") from None

    def _answer_close(self, payload: bytes) -> None:
        if not self.closed:
            self.closed = True
            try:
                self._send_frame(OP_CLOSE, payload[:2])
            except OSError:
                pass
        self._sock.close()

    def close(self) -> None:
        """Send a normal close frame and drop the connection (no wait for the peer's answer)."""
        if not self.closed:
            self.closed = True
            try:
                self._send_frame(OP_CLOSE, struct.pack("!H", 1000))
            except OSError:
                pass
        self._sock.close()


# -- CDP ------------------------------------------------------------------------------------------------
class CDPError(RuntimeError):
    """A CDP command answered with an error, or a script raised in the page."""


class CDPConnection:
    """JSON-RPC over a DevTools websocket: :meth:`call` waits for its answer; events are queued."""

    def __init__(self, websocket_url: str, timeout: float = 30.0) -> None:
        self.ws = WebSocket(websocket_url, timeout=timeout)
        self.timeout = timeout
        self._next_id = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=10_000)

    def call(self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Send one command and return its ``result``; events that arrive meanwhile are queued."""
        self._next_id += 1
        message_id = self._next_id
        self.ws.send_text(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"CDP {method} got no answer within {timeout or self.timeout:.0f} s")
            message = self._receive(left)
            if message.get("id") == message_id:
                if "error" in message:
                    raise CDPError(f"CDP {method} failed: {message['error']}")
                return message.get("result", {})

    def _receive(self, timeout: float) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        message = json.loads(raw)
        if "method" in message and "id" not in message:
            self.events.append(message)
        return message

    def wait_event(
        self, method: str, predicate: Callable[[dict[str, Any]], bool] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Take the first queued or arriving event named ``method`` (matching ``predicate``); its params."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for event in list(self.events):
                if event["method"] == method and (predicate is None or predicate(event.get("params", {}))):
                    self.events.remove(event)
                    return event.get("params", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no CDP event {method} within {timeout or self.timeout:.0f} s")
            try:
                self._receive(left)
            except TimeoutError:
                pass

    def close(self) -> None:
        """Close the websocket."""
        self.ws.close()


class Page:
    """One browser tab: navigate, evaluate JavaScript, wait for a condition, take a screenshot."""

    def __init__(self, connection: CDPConnection, target_id: str) -> None:
        self.cdp = connection
        self.target_id = target_id
        self.cdp.call("Page.enable")
        self.cdp.call("Runtime.enable")

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        """Open ``url`` and wait for its load event."""
        self.cdp.events.clear()
        answer = self.cdp.call("Page.navigate", {"url": url})
        if answer.get("errorText"):
            raise CDPError(f"cannot open {url}: {answer['errorText']}")
        self.cdp.wait_event("Page.loadEventFired", timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        """The JSON value of a JavaScript expression (promises are awaited); CDPError if it throws."""
        answer = self.cdp.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True, "userGesture": True},
            timeout=timeout,
        )
        details = answer.get("exceptionDetails")
        if details:
            exception = details.get("exception", {})
            text = exception.get("description") or exception.get("value") or details.get("text")
            raise CDPError(f"JavaScript raised: {text}\n  in: {expression[:300]}")
        return answer.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60.0, interval: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; return its value. TimeoutError names the expression."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression, timeout=max(1.0, deadline - time.monotonic()))
            except CDPError:
                value = None  # e.g. a global the page has not defined yet
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still falsy after {timeout:.0f} s: {expression}")
            time.sleep(interval)

    def set_viewport(self, width: int, height: int, scale: float = 1.0) -> None:
        """Make the page ``width`` x ``height`` CSS pixels, drawn at ``scale`` device pixels per CSS pixel."""
        self.cdp.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
        )

    def screenshot(self) -> bytes:
        """A PNG of the visible page."""
        answer = self.cdp.call("Page.captureScreenshot", {"format": "png"}, timeout=60.0)
        return base64.b64decode(answer["data"])

    def close(self) -> None:
        """Close the tab and its connection; idempotent."""
        if not self.cdp.ws.closed:
            try:
                self.cdp.call("Page.close", timeout=5.0)
            except (OSError, CDPError):
                pass  # the tab or the browser is already gone
        self.cdp.close()


# -- the browser process ----------------------------------------------------------------------------------
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser to run: ``$CHROMIUM`` if set, else the first of CHROMIUM_CANDIDATES on PATH."""
    override = os.environ.get("CHROMIUM")
    if override:
        return override
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_command(binary: str, user_data_dir: Path, port: int = 0, extra: Sequence[str] = ()) -> list[str]:
    """Headless Chromium with a fresh profile and DevTools on ``port`` (0: it picks a free one)."""
    return [
        binary,
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
        f"--user-data-dir={user_data_dir}", f"--remote-debugging-port={port}",
        *extra,
        "about:blank",
    ]  # fmt: skip


class Chromium:
    """A headless Chromium process with a throw-away profile; a context manager that always stops it.

    ``startup_seconds`` is the time until its DevTools endpoint answered.
    """

    def __init__(
        self, binary: str | None = None, *, start_timeout: float = 60.0, extra_args: Sequence[str] = ()
    ) -> None:
        self.binary = binary or find_chromium()
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.port: int | None = None
        self.startup_seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._profile: Path | None = None
        self._pages: list[Page] = []

    @property
    def devtools_url(self) -> str:
        """``http://127.0.0.1:<port>``: the DevTools HTTP endpoint (``/json/...``)."""
        if self.port is None:
            raise RuntimeError("Chromium has not been started")
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        """What the browser wrote to stderr/stdout so far."""
        try:
            return (self._profile / "chromium.log").read_text(errors="replace") if self._profile else ""
        except OSError:
            return ""

    def start(self) -> Chromium:
        """Launch the browser and wait until its DevTools HTTP endpoint answers."""
        if self.binary is None:
            raise RuntimeError(
                "no Chromium found (looked for $CHROMIUM, " + ", ".join(CHROMIUM_CANDIDATES) + "); "
                "install it, e.g. apt-get install chromium"
            )
        started = time.monotonic()
        self._profile = Path(tempfile.mkdtemp(prefix="gan-edit-chromium-"))
        profile_dir = self._profile / "profile"
        with open(self._profile / "chromium.log", "wb") as log:
            self._process = subprocess.Popen(
                chromium_command(self.binary, profile_dir, 0, self.extra_args),
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        try:
            self.port = self._wait_for_port(profile_dir / "DevToolsActivePort", started)
            self._wait_for_http(started)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_for_port(self, port_file: Path, started: float) -> int:
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"Chromium exited with code {self._process.returncode}:\n{self.log_text()[-3000:]}")
            try:
                first_line = port_file.read_text().splitlines()[0]
                return int(first_line)
            except (OSError, IndexError, ValueError):
                pass
            if time.monotonic() - started > self.start_timeout:
                raise RuntimeError(f"Chromium opened no DevTools port within {self.start_timeout:.0f} s")
            time.sleep(0.05)

    def _wait_for_http(self, started: float) -> None:
        while True:
            try:
                self.get_json("/json/version")
                return
            except OSError:
                if time.monotonic() - started > self.start_timeout:
                    raise
                time.sleep(0.05)

    def get_json(self, path: str, method: str = "GET") -> Any:
        """A DevTools HTTP endpoint (``/json/version``, ``/json/list``, ...) decoded as JSON."""
        request = urllib.request.Request(self.devtools_url + path, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def new_page(self, width: int = 1600, height: int = 1000, scale: float = 1.0) -> Page:
        """A fresh tab at about:blank with a ``width`` x ``height`` viewport at device ``scale``."""
        target = self.get_json("/json/new?about:blank", method="PUT")
        page = Page(CDPConnection(target["webSocketDebuggerUrl"]), target["id"])
        page.set_viewport(width, height, scale)
        self._pages.append(page)
        return page

    def stop(self) -> None:
        """Close the connections, end the browser's process group and delete the profile; idempotent."""
        for page in self._pages:
            page.close()
        self._pages.clear()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                signal_group(process, signal.SIGKILL)
                process.wait()
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)
            self._profile = None

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

