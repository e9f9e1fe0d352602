"""Start and stop a real ComfyUI server with this pack (or another pack folder) in its custom_nodes.

::

    with ComfyServer() as server:          # builds the environment first when needed
        print(server.url)                  # http://127.0.0.1:<free port>

Each server gets a fresh base directory (``custom_nodes/<pack> -> the pack folder`` as a symlink,
``models/``, ``user/``, ``input/``, ``output/``) and logs to ``<base>/comfyui.log``. Start-up fails
loudly, with the relevant log lines, when the process dies, when the pack shows ``(IMPORT FAILED)``
(ComfyUI itself keeps running in that case) or when the probe node is missing from ``/object_info``.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .env import Env, ensure_env, repo_root
from .process import signal_group

PACK_NAME = "comfyui-gan-edit"
DEFAULT_PROBE_NODE = "GanEditBoxMask"
STOP_GRACE_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def import_failure_lines(log_text: str, pack_name: str) -> list[str]:
    """The log lines that explain why ComfyUI could not import the custom node folder ``pack_name``.

    Empty when the import summary does not mark the pack ``(IMPORT FAILED)``. Otherwise: the pack's
    traceback (ComfyUI logs it right before ``Cannot import <path> module ...``), every other warning
    naming the pack folder, and the summary line itself.
    """
    lines = log_text.splitlines()
    marker = f"custom_nodes{os.sep}{pack_name}"

    def names_pack(line: str) -> bool:
        return line.rstrip().endswith(marker) or f"{marker} " in line or f"{marker}:" in line

    if not any("(IMPORT FAILED)" in line and names_pack(line) for line in lines):
        return []
    relevant: list[str] = []
    for index, line in enumerate(lines):
        if not names_pack(line):
            continue
        if line.startswith("Cannot import"):
            start = max((i for i in range(index) if lines[i].startswith("Traceback")), default=index)
            relevant.extend(lines[start:index])
        relevant.append(line)
    return relevant


class ComfyServer:
    """A ComfyUI process on a free local port; a context manager that always stops it.

    ``pack_dir`` (default: this repository) is linked as ``custom_nodes/<pack_name>``.
    ``probe_node`` must appear in ``/object_info`` after start-up (None skips that check).
    Without ``base_dir`` a fresh temporary base directory is used and deleted on stop (unless
    ``keep_base_dir`` is set or start-up failed); with it, that folder is the server's persistent home:
    created when missing, ``input/``, ``output/`` and ``models/gan_edit/`` kept between runs.
    """

    def __init__(
        self,
        env: Env | None = None,
        *,
        pack_dir: Path | str | None = None,
        pack_name: str = PACK_NAME,
        probe_node: str | None = DEFAULT_PROBE_NODE,
        port: int | None = None,
        start_timeout: float = 120.0,
        extra_args: Sequence[str] = (),
        keep_base_dir: bool = False,
        base_dir: Path | str | None = None,
    ) -> None:
        self._env = env
        self.pack_dir = Path(pack_dir).resolve() if pack_dir is not None else repo_root()
        self.pack_name = pack_name
        self.probe_node = probe_node
        self.port = port
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.persistent_base = Path(base_dir).resolve() if base_dir is not None else None
        self.keep_base_dir = keep_base_dir or base_dir is not None
        self._process: subprocess.Popen[bytes] | None = None
        self._base_dir: Path | None = None
        self._started_at = 0.0
        self.startup_seconds: float | None = None

    # -- paths -------------------------------------------------------------------------------------
    @property
    def base_dir(self) -> Path:
        if self._base_dir is None:
            raise RuntimeError("ComfyServer has not been started")
        return self._base_dir

    @property
    def log_path(self) -> Path:
        return self.base_dir / "comfyui.log"

    @property
    def input_dir(self) -> Path:
        return self.base_dir / "input"

    @property
    def output_dir(self) -> Path:
        return self.base_dir / "output"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("ComfyServer has not been started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- state -------------------------------------------------------------------------------------
    def running(self) -> bool:
        """True while the ComfyUI process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_text(self) -> str:
        """Everything ComfyUI wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, RuntimeError):
            return ""

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def rss_bytes(self) -> int:
        """Resident memory of the ComfyUI process (``VmRSS`` of /proc/<pid>/status), in bytes."""
        if not self.running():
            raise RuntimeError("ComfyUI is not running")
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS in /proc/{self.pid}/status")

    # -- start / stop ------------------------------------------------------------------------------
    def _prepare_base_dir(self, env: Env) -> Path:
        if self.persistent_base is not None:
            base = self.persistent_base
        else:
            parent = env.cache_dir / "servers"
            parent.mkdir(parents=True, exist_ok=True)
            base = Path(tempfile.mkdtemp(prefix="comfyui-", dir=parent))
        for name in ("custom_nodes", "models/gan_edit", "user", "input", "output"):
            (base / name).mkdir(parents=True, exist_ok=True)
        if not (self.pack_dir / "__init__.py").is_file():
            raise RuntimeError(f"{self.pack_dir} has no __init__.py: not a ComfyUI custom node pack")
        link = base / "custom_nodes" / self.pack_name
        if link.is_symlink():  # a persistent base: point it at this checkout
            link.unlink()
        elif link.exists():
            raise RuntimeError(f"{link} exists and is not a link to a pack checkout; move it away")
        link.symlink_to(self.pack_dir, target_is_directory=True)
        return base

    def command(self, env: Env) -> list[str]:
        """The ComfyUI command line (run with cwd = the ComfyUI folder)."""
        base = self.base_dir
        return [
            str(env.python), "main.py", "--cpu",
            "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(base),
            "--database-url", f"sqlite:///{base / 'user' / 'comfyui.db'}",
            "--disable-auto-launch",
            *self.extra_args,
        ]  # fmt: skip

    def start(self) -> ComfyServer:
        """Start ComfyUI and wait until it answers with the pack loaded; raise RuntimeError otherwise."""
        if self._process is not None:
            raise RuntimeError("ComfyServer is already started")
        env = self._env or ensure_env()
        self._base_dir = self._prepare_base_dir(env)
        self.port = self.port or free_port()
        process_env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._started_at = time.monotonic()
        with open(self.log_path, "wb") as log:
            self._process = subprocess.Popen(
                self.command(env), cwd=env.comfyui_dir, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=process_env, start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)
        try:
            self._wait_until_answering()
            self._check_pack_loaded()
        except BaseException:
            self.stop(keep_base_dir=True)
            raise
        self.startup_seconds = time.monotonic() - self._started_at
        return self

    def _get_json(self, path: str, timeout: float = 10.0) -> object:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def _failure(self, what: str) -> RuntimeError:
        return RuntimeError(f"{what}\n--- last lines of {self.log_path} ---\n{self.log_tail()}")

    def _wait_until_answering(self) -> None:
        deadline = self._started_at + self.start_timeout
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise self._failure(f"ComfyUI exited with code {code} during start-up")
            try:
                self._get_json("/system_stats", timeout=2.0)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise self._failure(f"ComfyUI did not answer on {self.url} within {self.start_timeout:.0f} s")
            time.sleep(0.25)

    def _check_pack_loaded(self) -> None:
        failure = import_failure_lines(self.log_text(), self.pack_name)
        if failure:
            raise RuntimeError(
                f"ComfyUI could not import the custom node pack {self.pack_name} ({self.pack_dir}):\n"
                + "\n".join(failure)
                + f"\n(full log: {self.log_path})"
            )
        if self.probe_node is None:
            return
        info = self._get_json("/object_info/" + urllib.parse.quote(self.probe_node))
        if not info:
            raise self._failure(
                f"the pack {self.pack_name} loaded but GET /object_info/{self.probe_node} returned "
                f"{json.dumps(info)}: node {self.probe_node!r} is not registered"
            )

    def stop(self, keep_base_dir: bool | None = None) -> None:
        """Terminate ComfyUI (SIGTERM, then SIGKILL after 10 s); idempotent."""
        process, self._process = self._process, None
        if process is not None:
            atexit.unregister(self.stop)
            if process.poll() is None:
                signal_group(process, signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    signal_group(process, signal.SIGKILL)
                    process.wait()
        keep = self.keep_base_dir if keep_base_dir is None else keep_base_dir
        if self._base_dir is not None and not keep:
            _remove_base_dir(self._base_dir, self.pack_name)

    def __enter__(self) -> ComfyServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()




def _remove_base_dir(base: Path, pack_name: str) -> None:
    """Delete a server's base directory; the pack symlink is unlinked first, never followed."""
    link = base / "custom_nodes" / pack_name
    if link.is_symlink():
        link.unlink()
    shutil.rmtree(base, ignore_errors=True)
