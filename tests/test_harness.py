"""Unit tests of the harness helpers that need no server: overrides, error reports, multipart, ports."""

from __future__ import annotations

import email.parser
import email.policy
import json
import socket
from pathlib import Path

import pytest

from nodes.harness.client import (
    ComfyClient,
    ExecutionFailed,
    ExecutionInterrupted,
    PromptRejected,
    encode_multipart,
    format_prompt_error,
    load_workflow,
    parse_override,
    raise_for_status,
)
from nodes.harness.env import comfyui_requirements, pack_requirements
from nodes.harness.server import free_port, import_failure_lines

pytestmark = pytest.mark.unit

WORKFLOW = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "face.png"}, "_meta": {"title": "Load Image"}},
    "2": {"class_type": "GanEditBoxMask", "inputs": {"image": ["1", 0], "x": 0.25, "grow": 4},
          "_meta": {"title": "Box.Mask v1"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "out"},
          "_meta": {"title": "Save"}},
    "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "raw"},
          "_meta": {"title": "Save"}},
}  # fmt: skip

# The shape of a real ComfyUI 0.3.75 answer to POST /prompt (HTTP 400).
REJECTION = {
    "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
              "details": "", "extra_info": {}},
    "node_errors": {
        "10": {"errors": [{"type": "required_input_missing", "message": "Required input is missing",
                           "details": "mask", "extra_info": {"input_name": "mask"}}],
               "dependent_outputs": ["3"], "class_type": "GanEditInpaint"},
        "2": {"errors": [
                  {"type": "value_bigger_than_max", "message": "Value 11 bigger than max of 10",
                   "details": "grow", "extra_info": {"input_name": "grow", "received_value": 11}},
                  {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                   "details": "image - Invalid image file: nothere.png", "extra_info": {}}],
              "dependent_outputs": ["3"], "class_type": "GanEditBoxMask"},
    },
}  # fmt: skip


@pytest.fixture
def workflow_file(tmp_path: Path) -> Path:
    path = tmp_path / "inpaint.json"
    path.write_text(json.dumps(WORKFLOW), encoding="utf-8")
    return path


# -- overrides -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Load Image.image=face.png", ("Load Image", "image", "face.png")),
        ("2.grow=7", ("2", "grow", 7)),
        ("2.x=0.5", ("2", "x", 0.5)),
        ('2.seed="7"', ("2", "seed", "7")),
        ("2.flag=true", ("2", "flag", True)),
        ('2.image=["1", 0]', ("2", "image", ["1", 0])),
        ("Box.Mask v1.grow=3", ("Box.Mask v1", "grow", 3)),
        ("Save.filename_prefix=a=b", ("Save", "filename_prefix", "a=b")),
    ],
)
def test_parse_override(text: str, expected: tuple) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["grow=3", "2.grow", ".grow=3", "2.=3"])
def test_parse_override_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="NODE.INPUT=VALUE"):
        parse_override(text)


def test_load_workflow_by_title_and_id(workflow_file: Path) -> None:
    prompt = load_workflow(workflow_file, ["Load Image.image=dog.png", "2.grow=9", "Box.Mask v1.x=0.75"])
    assert prompt["1"]["inputs"]["image"] == "dog.png"
    assert prompt["2"]["inputs"] == {"image": ["1", 0], "x": 0.75, "grow": 9}
    assert prompt["3"] == WORKFLOW["3"]


def test_load_workflow_without_overrides_is_the_file(workflow_file: Path) -> None:
    assert load_workflow(workflow_file) == WORKFLOW


def test_unknown_node_lists_the_nodes(workflow_file: Path) -> None:
    with pytest.raises(ValueError, match="no node with id or title 'Nope'") as caught:
        load_workflow(workflow_file, ["Nope.image=x"])
    assert '1 "Load Image"' in str(caught.value)
    assert '2 "Box.Mask v1"' in str(caught.value)


def test_unknown_input_lists_the_inputs(workflow_file: Path) -> None:
    with pytest.raises(ValueError, match="has no input 'size'") as caught:
        load_workflow(workflow_file, ["2.size=3"])
    assert "grow, image, x" in str(caught.value)


def test_ambiguous_title_asks_for_an_id(workflow_file: Path) -> None:
    with pytest.raises(ValueError, match=r"several nodes \(3, 4\)"):
        load_workflow(workflow_file, ["Save.filename_prefix=x"])
    assert load_workflow(workflow_file, ["4.filename_prefix=x"])["4"]["inputs"]["filename_prefix"] == "x"


def test_ui_format_workflow_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ui.json"
    path.write_text(json.dumps({"nodes": [], "links": [], "version": 0.4}), encoding="utf-8")
    with pytest.raises(ValueError, match="UI-format"):
        load_workflow(path)


# -- error reports --------------------------------------------------------------------------------------
def test_format_prompt_error_lists_every_node_error() -> None:
    prompt = {"2": {"class_type": "GanEditBoxMask", "inputs": {}, "_meta": {"title": "Box"}}}
    lines = format_prompt_error(REJECTION, prompt).splitlines()
    assert lines == [
        "ComfyUI rejected the prompt: prompt_outputs_failed_validation: Prompt outputs failed validation",
        '  node 2 "Box" (GanEditBoxMask):',
        "    - value_bigger_than_max: Value 11 bigger than max of 10 (grow)",
        "    - custom_validation_failed: Custom validation failed for node (image - Invalid image file: nothere.png)",
        "  node 10 (GanEditInpaint):",
        "    - required_input_missing: Required input is missing (mask)",
    ]


def test_format_prompt_error_without_node_errors() -> None:
    payload = {"error": {"type": "invalid_prompt", "message": "Cannot execute because node Nope does not exist.",
                         "details": "Node ID '#2'", "extra_info": {}}, "node_errors": {}}  # fmt: skip
    assert format_prompt_error(payload) == (
        "ComfyUI rejected the prompt: invalid_prompt: Cannot execute because node Nope does not exist. (Node ID '#2')"
    )


def test_prompt_rejected_keeps_payload() -> None:
    error = PromptRejected(REJECTION)
    assert isinstance(error, RuntimeError)
    assert error.payload is REJECTION
    assert "node 10 (GanEditInpaint)" in str(error)


def _history(status_str: str, messages: list) -> dict:
    return {"outputs": {}, "status": {"status_str": status_str, "completed": status_str == "success",
                                      "messages": messages}}  # fmt: skip


def test_raise_for_status_execution_error() -> None:
    data = {"prompt_id": "p", "node_id": "5", "node_type": "GanEditInpaint", "exception_type": "ValueError",
            "exception_message": "mask must be B1HW, got (1, 3, 8, 8)\n", "traceback": []}  # fmt: skip
    entry = _history("error", [["execution_start", {"prompt_id": "p"}], ["execution_error", data]])
    with pytest.raises(ExecutionFailed) as caught:
        raise_for_status(entry)
    assert str(caught.value) == "node 5 (GanEditInpaint) failed: ValueError: mask must be B1HW, got (1, 3, 8, 8)"
    assert (caught.value.node_id, caught.value.exception_type) == ("5", "ValueError")
    assert caught.value.payload is data


def test_raise_for_status_interrupted_and_success() -> None:
    interrupted = _history("error", [["execution_interrupted", {"prompt_id": "p", "node_id": "3",
                                                                "node_type": "SaveImage"}]])  # fmt: skip
    with pytest.raises(ExecutionInterrupted, match="p was interrupted at node 3 \\(SaveImage\\)"):
        raise_for_status(interrupted)
    ok = _history("success", [["execution_success", {"prompt_id": "p"}]])
    assert raise_for_status(ok) is ok


def test_outputs_in_node_order() -> None:
    entry = {"outputs": {
        "12": {"images": [{"filename": "b.png", "subfolder": "", "type": "output"}]},
        "3": {"images": [{"filename": "a_1.png", "subfolder": "x", "type": "output"},
                         {"filename": "a_2.png", "subfolder": "x", "type": "output"}], "text": ["hi"]},
        "4": {"images": [{"filename": "p.png", "subfolder": "", "type": "temp"}]},
    }}  # fmt: skip
    found = ComfyClient.outputs(entry)
    assert [(node, desc["filename"]) for node, desc in found] == [
        ("3", "a_1.png"), ("3", "a_2.png"), ("4", "p.png"), ("12", "b.png")
    ]  # fmt: skip


# -- multipart, ports, logs, requirements -----------------------------------------------------------------
def test_multipart_round_trip() -> None:
    data = bytes(range(256)) + b"\r\n--not-a-boundary\r\n" + b"\x89PNG"
    body, content_type = encode_multipart({"overwrite": "true", "type": "input"}, [("image", "face.png", data)])
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    assert set(parts) == {"overwrite", "type", "image"}
    assert parts["overwrite"].get_content() == "true"
    assert parts["type"].get_content() == "input"
    assert parts["image"].get_filename() == "face.png"
    assert parts["image"].get_content_type() == "image/png"
    assert parts["image"].get_payload(decode=True) == data


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))


LOG_WITH_FAILURE = """\
Starting server
Traceback (most recent call last):
  File "/c/nodes.py", line 2146, in load_custom_node
    module_spec.loader.exec_module(module)
ModuleNotFoundError: No module named 'kornia'

Cannot import /b/custom_nodes/comfyui-gan-edit module for custom nodes: No module named 'kornia'
Traceback (most recent call last):
ImportError: other

Cannot import /b/custom_nodes/other-pack module for custom nodes: other

Import times for custom nodes:
   0.0 seconds (IMPORT FAILED): /b/custom_nodes/other-pack
   0.1 seconds (IMPORT FAILED): /b/custom_nodes/comfyui-gan-edit
"""


def test_import_failure_lines_pick_our_pack() -> None:
    lines = import_failure_lines(LOG_WITH_FAILURE, "comfyui-gan-edit")
    assert lines[0] == "Traceback (most recent call last):"
    assert "ModuleNotFoundError: No module named 'kornia'" in lines
    assert lines[-1] == "   0.1 seconds (IMPORT FAILED): /b/custom_nodes/comfyui-gan-edit"
    assert not any("other" in line for line in lines)


def test_import_failure_lines_empty_when_loaded() -> None:
    log = LOG_WITH_FAILURE.replace("0.1 seconds (IMPORT FAILED): /b/custom_nodes/comfyui-gan-edit",
                                   "0.1 seconds: /b/custom_nodes/comfyui-gan-edit")  # fmt: skip
    assert import_failure_lines(log, "comfyui-gan-edit") == []
    assert import_failure_lines(LOG_WITH_FAILURE, "comfyui-gan") == []


def test_comfyui_requirements_drop_torch_and_add_requests() -> None:
    text = "torch\ntorchvision>=0.1\ntorchaudio\nnumpy>=1.25.0 # why\n\n#comment\nPillow\nSQLAlchemy\n"
    assert comfyui_requirements(text) == ["numpy>=1.25.0", "Pillow", "SQLAlchemy", "requests"]
    assert comfyui_requirements("Requests>=2\n") == ["Requests>=2"]


def test_pack_requirements_read_dependencies_and_test_extra(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["torch==2.14.1", "pillow>=10"]\n'
        '[project.optional-dependencies]\ntest = ["pytest>=8"]\ndocs = ["sphinx"]\n',
        encoding="utf-8",
    )
    assert pack_requirements(pyproject) == ["torch==2.14.1", "pillow>=10", "pytest>=8"]
