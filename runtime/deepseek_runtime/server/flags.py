"""The `serve` flags, generated from ServerSettings: names, types, choices, help and defaults.

A flag is `--<field-name-with-dashes>`; booleans get a `--no-` form. Unset flags stay absent
(argparse.SUPPRESS), so environment variables and the config file can fill them; the help
shows each default as the settings model holds it.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic.fields import FieldInfo

from deepseek_runtime.settings import GROUPS, ServerSettings


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X (every optional setting means "unset" by None, never by a flag value)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, int) and default >= 1 << 20 and default % (1 << 20) == 0:
        return f"{default >> 20} MiB"
    return str(default)


def _help(info: FieldInfo) -> str:
    text = info.description or ""
    return text if info.default is None else f"{text} (default: {_shown(info.default)})"


def _argument(group: Any, name: str, info: FieldInfo) -> None:
    kind = _without_none(info.annotation)
    options: dict[str, Any] = {"help": _help(info), "default": argparse.SUPPRESS}
    if kind is bool:
        options["action"] = argparse.BooleanOptionalAction
    elif typing.get_origin(kind) is Literal:
        options["choices"] = [str(c) for c in typing.get_args(kind)]
    elif kind in (int, float, Path):
        options["type"] = kind
    elif kind is not str:
        raise TypeError(f"ServerSettings.{name}: no flag type for {kind!r}")
    group.add_argument(flag_name(name), **options)


def add_serve_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per setting, grouped as the settings are (model, network, security)."""
    groups = {g: parser.add_argument_group(g) for g in GROUPS}
    for name, info in ServerSettings.model_fields.items():
        extra = info.json_schema_extra
        group = extra.get("group") if isinstance(extra, dict) else None
        if group not in groups:
            raise ValueError(f"ServerSettings.{name} has no group (one of {', '.join(GROUPS)})")
        _argument(groups[str(group)], name, info)
