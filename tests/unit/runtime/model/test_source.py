"""Where a model's weights are (no torch): GGUF files, directories, the HF cache layout."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_runtime.model.source import resolve_source


def model_dir(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    return path


def hf_repo(root: Path, ref: str | None) -> Path:
    repo = root / "hub" / "models--org--tiny"
    model_dir(repo / "snapshots" / "0123abcd")
    if ref is not None:
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(ref + "\n")
    return repo


def test_refs_main_picks_the_snapshot(tmp_path: Path) -> None:
    repo = hf_repo(tmp_path, "0123abcd")
    source = resolve_source(repo)
    assert source.directory == repo / "snapshots" / "0123abcd"
    assert source.name == "org/tiny"


@pytest.mark.parametrize(
    "ref", ["../../../outside", "../../../outside/", "0123abcd/../../../../outside", "ABSOLUTE"]
)
def test_refs_main_cannot_leave_the_snapshots_directory(tmp_path: Path, ref: str) -> None:
    outside = model_dir(tmp_path / "outside")  # a loadable model somewhere else
    repo = hf_repo(tmp_path, str(outside) if ref == "ABSOLUTE" else ref)
    assert (repo / "snapshots" / ref).resolve() == outside.resolve() or ref == "ABSOLUTE"
    with pytest.raises(ValueError, match=r"refs/main names .* not a snapshot in .*snapshots"):
        resolve_source(repo)


def test_refs_main_naming_a_missing_snapshot_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="names 'feedbeef': no "):
        resolve_source(hf_repo(tmp_path, "feedbeef"))


def test_the_only_snapshot_without_refs_main(tmp_path: Path) -> None:
    repo = hf_repo(tmp_path, None)
    assert resolve_source(repo).directory == repo / "snapshots" / "0123abcd"


def test_gguf_file_and_bad_paths(tmp_path: Path) -> None:
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert (resolve_source(gguf).gguf_file, resolve_source(gguf).name) == ("m.Q4.gguf", "m.Q4")
    with pytest.raises(FileNotFoundError, match=r"expected a directory or a \.gguf"):
        resolve_source(tmp_path / "missing")
