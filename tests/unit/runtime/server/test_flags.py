"""The serve flags come from ServerSettings: one flag per setting, typed, with its default."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from deepseek_runtime.server.cli import build_parser
from deepseek_runtime.server.flags import flag_name
from deepseek_runtime.settings import ServerSettings, load_settings


def serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def flags() -> dict[str, argparse.Action]:
    return {a.option_strings[0]: a for a in serve_parser()._actions if a.option_strings}


def test_every_setting_is_a_flag_and_every_flag_a_setting() -> None:
    expected = {flag_name(n) for n in ServerSettings.model_fields} | {"-h", "--config"}
    assert set(flags()) == expected


def test_help_shows_the_settings_own_defaults() -> None:
    helps = {name: action.help or "" for name, action in flags().items()}
    assert helps["--max-num-seqs"].endswith("(default: 32)")
    assert helps["--max-body-bytes"].endswith("(default: 4 MiB)")
    assert helps["--triton"].endswith("(default: on)")
    assert "default" not in helps["--max-model-len"]  # None: the description says what unset does
    for name, info in ServerSettings.model_fields.items():
        assert info.description and info.description in helps[flag_name(name)], name


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--max-num-seqs", "3"], "max_num_seqs", 3),
        (["--triton-chunk-ms", "50"], "triton_chunk_ms", 50.0),
        (["--no-triton"], "triton", False),
        (["--metrics-auth", "--api-keys", "k.yaml"], "api_keys", Path("k.yaml")),
        (["--reasoning", "off"], "reasoning", "off"),
        (["--tls-min-version", "1.3"], "tls_min_version", "1.3"),
    ],
)
def test_flags_parse_into_settings(argv: list[str], field: str, value: object) -> None:
    args = vars(build_parser().parse_args(["serve", *argv]))
    cli = {k: v for k, v in args.items() if k not in ("command", "config")}
    assert getattr(load_settings(cli, {}), field) == value


def test_choices_are_the_settings_literals() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--log-level", "loud"])
    assert flags()["--log-level"].choices == ["debug", "info", "warning", "error"]


def test_unset_flags_stay_absent_so_env_and_file_can_fill_them() -> None:
    args = vars(build_parser().parse_args(["serve"]))
    assert args == {"command": "serve"}
