"""Weight manifests: every changed, missing or extra file is reported by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from deepseek_runtime.guards import integrity
from deepseek_runtime.guards.integrity import (
    ManifestError,
    build_manifest,
    dump_manifest,
    load_manifest,
    verify_manifest,
)


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "config.json").write_text('{"a": 1}')
    (root / "model.safetensors").write_bytes(bytes(range(256)) * 1000)
    (root / "sub" / "tokenizer.json").write_text("{}")
    return root


def write(manifest: dict, path: Path) -> Path:
    path.write_text(dump_manifest(manifest, path))
    return path


def test_manifest_lists_every_file_with_hash_and_size(model_dir: Path) -> None:
    manifest = build_manifest(model_dir)
    assert manifest["version"] == 1
    by_path = {f["path"]: f for f in manifest["files"]}
    assert set(by_path) == {"config.json", "model.safetensors", "sub/tokenizer.json"}
    assert by_path["model.safetensors"]["size"] == 256_000
    assert len(by_path["config.json"]["sha256"]) == 64


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_untouched_weights_verify(model_dir: Path, tmp_path: Path, suffix: str) -> None:
    path = write(build_manifest(model_dir), tmp_path / f"manifest{suffix}")
    loader = json.loads if suffix == ".json" else yaml.safe_load
    assert loader(path.read_text())["version"] == 1
    report = verify_manifest(model_dir, path)
    assert report.ok and report.checked == 3


def test_flipped_byte_is_named(model_dir: Path, tmp_path: Path) -> None:
    path = write(build_manifest(model_dir), tmp_path / "m.json")
    weights = model_dir / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[12345] ^= 0x01  # same size: only the hash can tell
    weights.write_bytes(bytes(data))
    report = verify_manifest(model_dir, path)
    assert report.mismatched == ["model.safetensors"]
    assert "model.safetensors: content differs" in report.problems()[0]


def test_missing_and_extra_files_are_named(model_dir: Path, tmp_path: Path) -> None:
    path = write(build_manifest(model_dir), tmp_path / "m.json")
    (model_dir / "sub" / "tokenizer.json").unlink()
    (model_dir / "evil.py").write_text("import os")
    report = verify_manifest(model_dir, path)
    assert report.missing == ["sub/tokenizer.json"]
    assert report.extra == ["evil.py"]
    assert not report.ok


def test_manifest_inside_the_directory_is_not_an_extra_file(model_dir: Path) -> None:
    path = write(build_manifest(model_dir), model_dir / "manifest.json")
    assert verify_manifest(model_dir, path).ok


def test_progress_is_logged_while_hashing(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(integrity, "PROGRESS_EVERY_S", 0.0)
    monkeypatch.setattr(integrity, "CHUNK_BYTES", 4096)
    lines: list[str] = []
    path = write(build_manifest(model_dir), tmp_path / "m.json")
    verify_manifest(model_dir, path, sink=lines.append)
    assert any("hashing weights" in line and "%" in line for line in lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2", "cannot read"),
        ('{"version": 2, "files": []}', "version 1"),
        ('{"version": 1, "files": {}}', "must be a list"),
        ('{"version": 1, "files": [{"path": "a"}]}', "files\\[0\\]"),
        ('{"version": 1, "files": [{"path": "../x", "sha256": "00", "size": 1}]}', "inside"),
    ],
)
def test_malformed_manifests_are_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)
