"""Typed settings: flags over env over the config file over defaults; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepseek_runtime.server.cli import build_parser
from deepseek_runtime.settings import ServerSettings, SettingsError, load_settings


def cli_values(*argv: str) -> dict:
    args = vars(build_parser().parse_args(["serve", *argv]))
    return {k: v for k, v in args.items() if k not in ("command", "config")}


def test_defaults() -> None:
    s = load_settings({}, {})
    assert (s.host, s.port, s.triton, s.triton_http_port, s.triton_grpc_port) == (
        "127.0.0.1", 8080, True, 8000, 8001,
    )  # fmt: skip
    assert s.tls_min_version == "1.2" and not s.metrics_auth and s.api_keys is None
    assert (s.metrics_port, s.triton_metrics_port) == (8090, 8002)  # clear of Triton's 8000-8002


def test_metrics_port_flag() -> None:
    assert load_settings(cli_values("--metrics-port", "9091"), {}).metrics_port == 9091


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"metrics_port": 8080}, "metrics_port 8080 is also port"),
        ({"metrics_port": 8002}, "triton_metrics_port 8002 is also metrics_port"),
        ({"port": 8000}, "triton_http_port 8000 is also port"),
    ],
)
def test_two_listeners_on_one_port_are_refused(values: dict, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        load_settings(values, {})


def test_ports_clash_only_with_what_listens() -> None:
    assert load_settings({"metrics_port": 8002, "triton": False}, {}).metrics_port == 8002
    assert load_settings({"port": 0, "metrics_port": 0}, {}).port == 0  # the kernel picks each


def test_precedence_flag_env_file(tmp_path: Path) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text("port: 9000\nmax-num-seqs: 3\nserved_model_name: from-file\n")
    env = {"DEEPSEEK_RUNTIME_PORT": "9100", "DEEPSEEK_RUNTIME_MAX_NUM_SEQS": "5"}
    s = load_settings(cli_values("--port", "9200"), env, config)
    assert (s.port, s.max_num_seqs, s.served_model_name) == (9200, 5, "from-file")


def test_config_file_from_env(tmp_path: Path) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text("triton: false\n")
    assert not load_settings({}, {"DEEPSEEK_RUNTIME_CONFIG": str(config)}).triton


def test_env_booleans_and_empty_values() -> None:
    env = {"DEEPSEEK_RUNTIME_TRITON": "false", "DEEPSEEK_RUNTIME_MODEL": ""}
    s = load_settings({}, env)
    assert s.triton is False and s.model is None


def test_no_triton_flag() -> None:
    assert load_settings(cli_values("--no-triton"), {}).triton is False


@pytest.mark.parametrize(
    ("cli", "env", "words"),
    [
        ({}, {"DEEPSEEK_RUNTIME_PORT": "eighty"}, "port"),
        ({}, {"DEEPSEEK_RUNTIME_NOPE": "1"}, "unknown setting 'NOPE'"),
        ({"tls_cert": "c.pem"}, {}, "tls_cert and tls_key"),
        ({"metrics_auth": True}, {}, "metrics_auth needs api_keys"),
        ({"tls_min_version": "1.1"}, {}, "tls_min_version"),
    ],
)
def test_bad_settings_name_the_key(cli: dict, env: dict, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        load_settings(cli, env)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text("prot: 1\n")
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        load_settings({}, {}, config)


@pytest.mark.parametrize(
    ("host", "keys", "allow", "refused"),
    [
        ("127.0.0.1", None, False, False),
        ("::1", None, False, False),
        ("localhost", None, False, False),
        ("0.0.0.0", None, False, True),
        ("0.0.0.0", None, True, False),
        ("0.0.0.0", Path("keys.yaml"), False, False),
    ],
)
def test_no_keys_beyond_loopback_is_refused(
    host: str, keys: Path | None, allow: bool, refused: bool
) -> None:
    s = ServerSettings(host=host, api_keys=keys, allow_unauthenticated=allow)
    assert (s.unsafe_binding() is not None) == refused
