"""The reference checkpoints are in the repository and are the files their provenance JSON describes."""

from __future__ import annotations

import hashlib
import json

import pytest
from reference import FIXTURES

DESCRIPTIONS = sorted(FIXTURES.glob("*.json"))


def test_every_public_family_has_its_reference_files():
    names = {p.stem for p in DESCRIPTIONS}
    assert {
        "adain_vgg_decoder", "context_encoder_netG", "context_encoder_netlocalD", "cyclegan_resnet6_instance_dropout",
        "cyclegan_resnet9_instance_nodropout", "fast_style_transformernet", "fast_style_transformernet_legacy",
        "patchgan_basic_n3_batch", "pix2pix_unet128_instance", "pix2pix_unet256_batch_dropout",
    } <= names


@pytest.mark.parametrize("description", DESCRIPTIONS, ids=lambda p: p.stem)
def test_fixture_files_match_their_recorded_size_and_sha256(description):
    files = json.loads(description.read_text())["files"]
    assert files, f"{description.name} lists no files"
    for name, facts in files.items():
        data = (FIXTURES / name).read_bytes()
        assert len(data) == facts["bytes"], name
        assert hashlib.sha256(data).hexdigest() == facts["sha256"], name
