"""The CLI as a process: manifests, refusing to start on tampered weights or unsafe settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from devkit.runtime_server import run_to_exit, runtime_command, serve_command

from deepseek_runtime.guards.keys import hash_key

pytestmark = pytest.mark.runtime

CLI = runtime_command()


@pytest.fixture
def weights(tmp_path: Path, tiny_llama_dir: Path) -> tuple[Path, Path]:
    """A copy of a tiny model and its manifest (kept outside the directory)."""
    model = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, model)
    manifest = tmp_path / "manifest.json"
    made = run_to_exit([*CLI, "manifest", str(model), "-o", str(manifest)])
    assert made.returncode == 0, made.stderr
    return model, manifest


def refuse(*args: str, env: dict[str, str] | None = None) -> str:
    """Runs `serve` expecting it to exit non-zero quickly; returns what it printed."""
    if env:
        old = os.environ.copy()
        os.environ.update(env)
    try:
        done = run_to_exit(serve_command("--no-triton", "--port", "0", *args), timeout_s=60)
    finally:
        if env:
            os.environ.clear()
            os.environ.update(old)
    assert done.returncode != 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_manifest_lists_every_file(weights: tuple[Path, Path]) -> None:
    model, manifest = weights
    doc = json.loads(manifest.read_text())
    assert doc["version"] == 1
    assert {f["path"] for f in doc["files"]} == {p.name for p in model.iterdir()}
    assert all(len(f["sha256"]) == 64 and f["size"] >= 0 for f in doc["files"])


def test_manifest_yaml_to_stdout(weights: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = weights
    out = tmp_path / "m.yaml"
    assert run_to_exit([*CLI, "manifest", str(model), "-o", str(out)]).returncode == 0
    assert yaml.safe_load(out.read_text())["version"] == 1
    printed = run_to_exit([*CLI, "manifest", str(model)])
    assert json.loads(printed.stdout)["files"]


def test_flipped_byte_refuses_to_start(weights: tuple[Path, Path]) -> None:
    model, manifest = weights
    weights_file = model / "model.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    out = refuse("--model", str(model), "--verify-manifest", str(manifest))
    assert "model.safetensors: content differs" in out and "refusing to start" in out


def test_removed_file_refuses_to_start(weights: tuple[Path, Path]) -> None:
    model, manifest = weights
    (model / "tokenizer.json").unlink()
    out = refuse("--model", str(model), "--verify-manifest", str(manifest))
    assert "tokenizer.json: missing" in out


def test_extra_file_refuses_to_start(weights: tuple[Path, Path]) -> None:
    model, manifest = weights
    (model / "backdoor.py").write_text("print('hi')")
    out = refuse("--model", str(model), "--verify-manifest", str(manifest))
    assert "backdoor.py: extra file" in out


def test_no_keys_beyond_loopback_refuses(weights: tuple[Path, Path]) -> None:
    model, _ = weights
    assert "refusing to listen on 0.0.0.0" in refuse("--model", str(model), "--host", "0.0.0.0")
    # The same setting through the environment (how runtime/Dockerfile sets the host).
    out = refuse("--model", str(model), env={"DEEPSEEK_RUNTIME_HOST": "0.0.0.0"})
    assert "refusing to listen" in out


def test_bad_files_refuse_with_a_reason(weights: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = weights
    keys = tmp_path / "keys.yaml"
    keys.write_text("- {name: a, role: root, sha256: abc}\n")
    assert "role must be one of" in refuse("--model", str(model), "--api-keys", str(keys))
    bad_filter = tmp_path / "filter.txt"
    bad_filter.write_text("(unclosed\n")
    assert "invalid regex" in refuse("--model", str(model), "--output-filter", str(bad_filter))
    config = tmp_path / "runtime.yaml"
    config.write_text("prot: 1\n")
    assert "unknown setting 'prot'" in refuse("--config", str(config))
    assert "no such file" in refuse("--model", str(tmp_path / "absent"))


def test_hash_key_reads_stdin() -> None:
    done = subprocess.run([*CLI, "hash-key"], input="sk-secret\n", capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == hash_key("sk-secret")
