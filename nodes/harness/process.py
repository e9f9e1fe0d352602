"""Stopping child processes that run in their own session (ComfyUI, Chromium)."""

from __future__ import annotations

import os
import subprocess


def signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Signal a child's process group (it runs in its own session), falling back to the process."""
    try:
        os.killpg(process.pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass
