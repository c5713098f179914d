"""`deepseek-runtime verify-manifest`: what the operator's init container runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_runtime.server.cli import main


@pytest.fixture
def model(tmp_path: Path) -> tuple[Path, Path]:
    weights = tmp_path / "model"
    weights.mkdir()
    (weights / "config.json").write_text('{"hidden_size": 8}')
    (weights / "model-00001-of-00002.safetensors").write_bytes(bytes(range(256)) * 64)
    (weights / "model-00002-of-00002.safetensors").write_bytes(b"\x01" * 5000)
    manifest = tmp_path / "manifest.json"
    assert main(["manifest", str(weights), "-o", str(manifest)]) == 0
    return weights, manifest


def verify(weights: Path, manifest: Path, log: Path) -> int:
    return main(["verify-manifest", str(manifest), str(weights), "--termination-log", str(log)])


def test_untouched_weights_pass(model: tuple[Path, Path], tmp_path: Path) -> None:
    weights, manifest = model
    log = tmp_path / "termination-log"
    assert verify(weights, manifest, log) == 0
    assert not log.exists()


def test_a_flipped_byte_is_named(model: tuple[Path, Path], tmp_path: Path) -> None:
    weights, manifest = model
    shard = weights / "model-00001-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[1000] ^= 0x01
    shard.write_bytes(bytes(data))
    log = tmp_path / "termination-log"
    assert verify(weights, manifest, log) == 1
    assert "model-00001-of-00002.safetensors: content differs" in log.read_text()


def test_a_removed_and_an_extra_file_are_named(model: tuple[Path, Path], tmp_path: Path) -> None:
    weights, manifest = model
    (weights / "model-00002-of-00002.safetensors").unlink()
    (weights / "backdoor.py").write_text("import os")
    log = tmp_path / "termination-log"
    assert verify(weights, manifest, log) == 1
    message = log.read_text()
    assert "model-00002-of-00002.safetensors: missing" in message
    assert "backdoor.py: extra file" in message


def test_an_unreadable_manifest_fails_closed(model: tuple[Path, Path], tmp_path: Path) -> None:
    weights, _ = model
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert verify(weights, bad, tmp_path / "log") == 1
