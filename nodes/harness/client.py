"""Drive a ComfyUI server over its HTTP API (urllib only) and load API-format workflows.

::

    client = ComfyClient("http://127.0.0.1:8188")
    client.upload_image(Path("workflows/inputs/face.png"))
    prompt = load_workflow(Path("workflows/api/inpaint.json"), ["Seed.seed=7", "5.steps=20"])
    files = client.run(prompt, Path("output"), stem="inpaint")

Failures raise readable errors: :class:`PromptRejected` (HTTP 400 from ``/prompt``: validation),
:class:`ExecutionFailed` (a node raised), :class:`ExecutionInterrupted`, ``TimeoutError``.
"""

from __future__ import annotations

import json
import mimetypes
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Prompt = dict[str, Any]


class PromptRejected(RuntimeError):
    """``POST /prompt`` answered 400: the graph failed validation. ``payload`` is the server's JSON."""

    def __init__(self, payload: Mapping[str, Any], prompt: Mapping[str, Any] | None = None) -> None:
        super().__init__(format_prompt_error(payload, prompt))
        self.payload = payload


class ExecutionFailed(RuntimeError):
    """A node raised while the prompt ran. ``payload`` is the ``execution_error`` message data."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        self.node_id = str(payload.get("node_id", "?"))
        self.node_type = str(payload.get("node_type", "?"))
        self.exception_type = str(payload.get("exception_type", "?"))
        self.exception_message = str(payload.get("exception_message", "")).strip()
        super().__init__(
            f"node {self.node_id} ({self.node_type}) failed: {self.exception_type}: {self.exception_message}"
        )


class ExecutionInterrupted(RuntimeError):
    """The prompt was interrupted (``POST /interrupt``). ``payload`` is the message data."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = payload
        node = payload.get("node_id")
        where = f" at node {node} ({payload.get('node_type', '?')})" if node is not None else ""
        super().__init__(f"prompt {payload.get('prompt_id', '?')} was interrupted{where}")


def _error_text(error: Mapping[str, Any] | str) -> str:
    if isinstance(error, str):
        return error
    text = f"{error.get('type', 'error')}: {error.get('message', '')}".rstrip(": ")
    details = error.get("details")
    return f"{text} ({details})" if details else text


def format_prompt_error(payload: Mapping[str, Any], prompt: Mapping[str, Any] | None = None) -> str:
    """A readable report of a ``/prompt`` 400 answer: the top-level error, then every node's errors.

    With the submitted ``prompt`` the report also names each node by its ``_meta.title``.
    """
    lines = [f"ComfyUI rejected the prompt: {_error_text(payload.get('error') or 'no error message')}"]
    node_errors = payload.get("node_errors") or {}
    for node_id, entry in sorted(node_errors.items(), key=lambda item: _id_sort_key(item[0])):
        title = ((prompt or {}).get(node_id) or {}).get("_meta", {}).get("title")
        named = f' "{title}"' if title else ""
        lines.append(f"  node {node_id}{named} ({entry.get('class_type', '?')}):")
        for error in entry.get("errors", []):
            lines.append(f"    - {_error_text(error)}")
    return "\n".join(lines)


def _id_sort_key(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def encode_multipart(fields: Mapping[str, str], files: Iterable[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body for text ``fields`` and ``(field, filename, data)`` files.

    Returns ``(body, content_type)``; the content type carries the boundary.
    """
    boundary = f"gan-edit-{uuid.uuid4().hex}"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        header = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        )
        parts.append(header.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# -- workflows ---------------------------------------------------------------------------------------
def parse_override(text: str) -> tuple[str, str, Any]:
    """``"<node title or id>.<input>=<value>"`` -> ``(node, input, value)``.

    The value is parsed as JSON when it is valid JSON (``7``, ``0.5``, ``true``, ``"7"``, ``["4", 0]``),
    else kept as a string. The node part may itself contain dots: the input is after the last one.
    """
    target, sep, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not sep or not dot or not node.strip() or not name.strip():
        raise ValueError(f"override {text!r} is not of the form NODE.INPUT=VALUE (NODE is a title or an id)")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return node.strip(), name.strip(), value


def _describe_nodes(prompt: Mapping[str, Any]) -> str:
    return ", ".join(
        f'{node_id} "{node.get("_meta", {}).get("title", node.get("class_type", "?"))}"'
        for node_id, node in sorted(prompt.items(), key=lambda item: _id_sort_key(item[0]))
    )


def find_node(prompt: Mapping[str, Any], node: str) -> str:
    """The id of the node addressed by id or by its unique ``_meta.title``; ValueError otherwise."""
    if node in prompt:
        return node
    matches = [node_id for node_id, entry in prompt.items() if entry.get("_meta", {}).get("title") == node]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"title {node!r} is used by several nodes ({', '.join(matches)}): address one by id")
    raise ValueError(f"no node with id or title {node!r}; the workflow has: {_describe_nodes(prompt)}")


def apply_overrides(prompt: Prompt, overrides: Iterable[str]) -> Prompt:
    """Set inputs in place from ``NODE.INPUT=VALUE`` strings (see :func:`parse_override`)."""
    for text in overrides:
        node, name, value = parse_override(text)
        node_id = find_node(prompt, node)
        inputs = prompt[node_id].setdefault("inputs", {})
        if name not in inputs:
            known = ", ".join(sorted(inputs)) or "none"
            raise ValueError(
                f"node {node_id} ({prompt[node_id].get('class_type', '?')}) has no input {name!r}; its inputs: {known}"
            )
        inputs[name] = value
    return prompt


def check_api_format(prompt: Any, source: str = "workflow") -> Prompt:
    """Return ``prompt`` when it is an API-format graph; ValueError that says what it is otherwise."""
    if isinstance(prompt, dict) and "nodes" in prompt and "links" in prompt:
        raise ValueError(f"{source} is a UI-format workflow; the API needs the API format (Export (API))")
    if not isinstance(prompt, dict) or not prompt:
        raise ValueError(f"{source} is not an API-format workflow (a JSON object of node id -> node)")
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            raise ValueError(f"{source}: node {node_id!r} has no class_type; not an API-format workflow")
    return prompt


def load_workflow(path: Path | str, overrides: Iterable[str] = ()) -> Prompt:
    """Read an API-format workflow JSON and apply ``NODE.INPUT=VALUE`` overrides."""
    path = Path(path)
    prompt = check_api_format(json.loads(path.read_text(encoding="utf-8")), str(path))
    return apply_overrides(prompt, overrides)


# -- the client ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WaitStatus:
    """What :meth:`ComfyClient.wait` reports to ``on_progress``: ``state`` is pending or running."""

    prompt_id: str
    state: str
    position: int | None  # prompts ahead in the queue while pending
    elapsed: float


OutputFile = tuple[str, dict[str, Any]]


class ComfyClient:
    """A small client of ComfyUI's HTTP API."""

    def __init__(self, base_url: str = "http://127.0.0.1:8188", timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex

    # -- transport --------------------------------------------------------------------------------
    def _request(self, path: str, data: bytes | None = None, content_type: str | None = None) -> bytes:
        request = urllib.request.Request(self.base_url + path, data=data)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", errors="replace")
            raise RuntimeError(f"{request.get_method()} {path} -> HTTP {error.code}: {body[:2000]}") from None
        except urllib.error.URLError as error:
            raise ConnectionError(f"cannot reach ComfyUI at {self.base_url}: {error.reason}") from None

    def get_json(self, path: str) -> Any:
        """``GET path`` decoded as JSON."""
        return json.loads(self._request(path))

    def post_json(self, path: str, body: Any) -> Any:
        """``POST path`` with a JSON body; the answer decoded as JSON (empty answer -> None)."""
        answer = self._request(path, json.dumps(body).encode(), "application/json")
        return json.loads(answer) if answer.strip() else None

    # -- small endpoints --------------------------------------------------------------------------
    def system_stats(self) -> dict[str, Any]:
        return self.get_json("/system_stats")

    def object_info(self, node: str | None = None) -> dict[str, Any]:
        """All node schemas, or one node's (``{}`` when ComfyUI does not know it)."""
        return self.get_json("/object_info" + (f"/{urllib.parse.quote(node)}" if node else ""))

    def interrupt(self) -> None:
        """Stop the running prompt."""
        self._request("/interrupt", b"", "application/json")

    def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The finished prompt's history entry, or None while it is pending or running."""
        return self.get_json(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)

    def queue_position(self, prompt_id: str) -> tuple[str, int | None]:
        """``("running", None)``, ``("pending", prompts ahead)`` or ``("unknown", None)``."""
        queue = self.get_json("/queue")
        if any(item[1] == prompt_id for item in queue.get("queue_running", [])):
            return "running", None
        pending = sorted(queue.get("queue_pending", []), key=lambda item: item[0])
        for position, item in enumerate(pending):
            if item[1] == prompt_id:
                return "pending", position
        return "unknown", None

    # -- files ------------------------------------------------------------------------------------
    def upload_image(self, path: Path | str, name: str | None = None) -> str:
        """Upload a file to ComfyUI's input folder (overwriting); return the name to use in LoadImage."""
        path = Path(path)
        body, content_type = encode_multipart(
            {"overwrite": "true", "type": "input"}, [("image", name or path.name, path.read_bytes())]
        )
        answer = json.loads(self._request("/upload/image", body, content_type))
        subfolder = answer.get("subfolder") or ""
        return f"{subfolder}/{answer['name']}" if subfolder else answer["name"]

    def download(self, file_desc: Mapping[str, Any]) -> bytes:
        """The bytes of an output file described by ``{filename, subfolder, type}`` (via ``/view``)."""
        query = urllib.parse.urlencode(
            {
                "filename": file_desc["filename"],
                "subfolder": file_desc.get("subfolder", ""),
                "type": file_desc.get("type", "output"),
            }
        )
        return self._request(f"/view?{query}")

    @staticmethod
    def outputs(history_entry: Mapping[str, Any]) -> list[OutputFile]:
        """Every file a finished prompt produced: ``(node_id, {filename, subfolder, type})`` in node order."""
        found: list[OutputFile] = []
        node_outputs = history_entry.get("outputs", {})
        for node_id in sorted(node_outputs, key=_id_sort_key):
            for value in node_outputs[node_id].values():
                if isinstance(value, list):
                    found += [(node_id, item) for item in value if isinstance(item, dict) and "filename" in item]
        return found

    # -- prompts ----------------------------------------------------------------------------------
    def queue(self, prompt: Mapping[str, Any], strict: bool = True) -> str:
        """Queue an API-format prompt; return its prompt_id. Raises PromptRejected on validation errors.

        ComfyUI accepts a prompt in which only some outputs are valid: it answers 200, lists the
        failures in ``node_errors`` and runs the valid part. With ``strict`` (default) that is a
        rejection too: the prompt is removed from the queue and PromptRejected is raised.
        """
        body = json.dumps({"prompt": prompt, "client_id": self.client_id}).encode()
        request = urllib.request.Request(self.base_url + "/prompt", data=body)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", errors="replace")
            if error.code != 400:
                raise RuntimeError(f"POST /prompt -> HTTP {error.code}: {text[:2000]}") from None
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"error": text, "node_errors": {}}
            raise PromptRejected(payload, prompt) from None
        except urllib.error.URLError as error:
            raise ConnectionError(f"cannot reach ComfyUI at {self.base_url}: {error.reason}") from None
        if strict and answer.get("node_errors"):
            self.post_json("/queue", {"delete": [answer["prompt_id"]]})
            message = "some outputs failed validation (the rest was queued, then removed from the queue)"
            raise PromptRejected(
                {
                    "error": {"type": "prompt_outputs_failed_validation", "message": message},
                    "node_errors": answer["node_errors"],
                    "prompt_id": answer["prompt_id"],
                },
                prompt,
            )
        return answer["prompt_id"]

    def wait(
        self,
        prompt_id: str,
        timeout: float = 600.0,
        on_progress: Callable[[WaitStatus], None] | None = None,
        poll_interval: float = 0.25,
    ) -> dict[str, Any]:
        """Wait for a queued prompt to finish; return its history entry.

        Raises ExecutionFailed / ExecutionInterrupted when it did not succeed and TimeoutError after
        ``timeout`` seconds (the prompt keeps running; call :meth:`interrupt` to stop it).
        """
        started = time.monotonic()
        while True:
            entry = self.history(prompt_id)
            if entry is not None:  # ComfyUI adds the entry once the prompt has finished
                return raise_for_status(entry)
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")
            if on_progress is not None:
                state, position = self.queue_position(prompt_id)
                on_progress(WaitStatus(prompt_id, state, position, elapsed))
            time.sleep(poll_interval)

    def run(
        self,
        prompt: Mapping[str, Any],
        out_dir: Path | str,
        *,
        stem: str = "prompt",
        include_temp: bool = False,
        timeout: float = 600.0,
        on_progress: Callable[[WaitStatus], None] | None = None,
    ) -> list[Path]:
        """Queue, wait, and save every output file as ``out_dir/<stem>_<node id>_<i><ext>``.

        Only ``type == "output"`` files (SaveImage & co.) unless ``include_temp`` adds previews.
        """
        entry = self.wait(self.queue(prompt), timeout=timeout, on_progress=on_progress)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        counts: dict[str, int] = {}
        for node_id, desc in self.outputs(entry):
            if desc.get("type", "output") != "output" and not include_temp:
                continue
            index = counts[node_id] = counts.get(node_id, -1) + 1
            target = out_dir / f"{stem}_{node_id}_{index}{Path(desc['filename']).suffix or '.png'}"
            target.write_bytes(self.download(desc))
            written.append(target)
        return written


def raise_for_status(entry: dict[str, Any]) -> dict[str, Any]:
    """Raise ExecutionInterrupted / ExecutionFailed for such a ``/history`` entry; return a successful one."""
    status = entry.get("status") or {}
    messages = {name: data for name, data in status.get("messages", []) if isinstance(data, dict)}
    if "execution_interrupted" in messages:
        raise ExecutionInterrupted(messages["execution_interrupted"])
    if status.get("status_str") == "error":
        raise ExecutionFailed(messages.get("execution_error", {"exception_message": json.dumps(status)}))
    return entry
