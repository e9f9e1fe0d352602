"""API -> UI workflow conversion against a small schema shaped like /object_info."""

import pytest

from nodes.harness.ui_format import api_to_ui, first_outputs

pytestmark = pytest.mark.unit

INFO = {
    "LoadImage": {
        "input": {"required": {"image": [["a.jpg", "b.jpg"], {"image_upload": True}]}},
        "input_order": {"required": ["image"]},
        "output": ["IMAGE", "MASK"], "output_name": ["IMAGE", "MASK"], "display_name": "Load Image",
    },
    "Gen": {
        "input": {
            "required": {"width": ["INT", {"default": 512}], "seed": ["INT", {"control_after_generate": True}]},
            "optional": {"image": ["IMAGE", {}]},
        },
        "input_order": {"required": ["width", "seed"], "optional": ["image"]},
        "output": ["MASK", "IMAGE"], "output_name": ["mask", "preview"], "display_name": "Gen",
    },
    "Save": {
        "input": {"required": {"images": ["IMAGE", {}], "filename_prefix": ["STRING", {"default": "x"}]}},
        "input_order": {"required": ["images", "filename_prefix"]},
        "output": [], "output_name": [], "display_name": "Save",
    },
}
PROMPT = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "b.jpg"}},
    "2": {"class_type": "Gen", "_meta": {"title": "My gen"}, "inputs": {"width": 64, "seed": 7, "image": ["1", 0]}},
    "3": {"class_type": "Save", "inputs": {"images": ["2", 1], "filename_prefix": "out"}},
}


def test_widgets_links_and_layout():
    ui = api_to_ui(PROMPT, INFO)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert nodes[1]["widgets_values"] == ["b.jpg", "image"]
    assert nodes[2]["widgets_values"] == [64, 7, "fixed"]
    assert nodes[2]["title"] == "My gen" and "title" not in nodes[3]
    assert nodes[3]["widgets_values"] == ["out"]
    assert ui["links"] == [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 1, 3, 0, "IMAGE"]]
    assert nodes[1]["outputs"][0]["links"] == [1] and nodes[2]["outputs"][1]["links"] == [2]
    assert nodes[2]["inputs"] == [{"name": "image", "type": "IMAGE", "link": 1}]
    assert nodes[1]["pos"][0] < nodes[2]["pos"][0] < nodes[3]["pos"][0]
    assert ui["last_node_id"] == 3 and ui["last_link_id"] == 2


def test_unknown_node_type_is_reported():
    with pytest.raises(ValueError, match=r"does not know these node types: \['Nope'\]"):
        api_to_ui({"1": {"class_type": "Nope", "inputs": {}}}, INFO)


def test_first_outputs_picks_item_zero_of_each_node(tmp_path):
    names = ["wf_name_12_0.png", "wf_name_12_1.png", "wf_name_3_0.png", "wf_name_3_1.png"]
    assert [p.name for p in first_outputs([tmp_path / n for n in names])] == ["wf_name_3_0.png", "wf_name_12_0.png"]


def test_a_linked_widget_becomes_an_input_socket_and_keeps_its_widget_slot():
    prompt = {
        "1": {"class_type": "Gen", "inputs": {"width": 64, "seed": 7}},
        "2": {"class_type": "Gen", "inputs": {"width": ["1", 0], "seed": 3}},
    }
    info = {**INFO, "Gen": {**INFO["Gen"], "output": ["INT", "IMAGE"]}}
    ui = api_to_ui(prompt, info)
    nodes = {n["id"]: n for n in ui["nodes"]}
    # the widget value is the schema default; the frontend then takes the value from the link
    assert nodes[2]["widgets_values"] == [512, 3, "fixed"]
    assert nodes[2]["inputs"][0] == {"name": "width", "type": "INT", "link": 1, "widget": {"name": "width"}}
    assert ui["links"] == [[1, 1, 0, 2, 0, "INT"]]
    assert nodes[1]["outputs"][0]["links"] == [1]
