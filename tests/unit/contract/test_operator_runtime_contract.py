"""The operator writes the runtime's configuration; the runtime must accept every word of it.

Two packages, one contract: each example CR's ConfigMap and container args are fed to the
runtime's own settings loader and argument parser, so a renamed flag breaks here, not in a pod.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepseek_operator.api import parse_spec
from deepseek_operator.gpu_choice import plan_for_spec
from deepseek_operator.manifests import Target, config_map, deployment
from deepseek_runtime.server.cli import build_parser
from deepseek_runtime.server.drain import SHUTDOWN_MARGIN_S
from deepseek_runtime.server.settings import ServerSettings, load_settings

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def target_of(example: Path) -> Target:
    doc = yaml.safe_load(example.read_text())
    spec = parse_spec(doc["spec"])
    return Target(doc["metadata"]["name"], "ai", spec, plan_for_spec(spec))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_runtime_accepts_the_operators_config(example: Path, tmp_path: Path) -> None:
    t = target_of(example)
    config_file = tmp_path / "runtime.yaml"
    config_file.write_text(config_map(t)["data"]["runtime.yaml"])
    settings = load_settings({}, {}, config_file)
    assert settings.served_model_name == t.spec.model.name
    assert settings.max_num_seqs == t.spec.runtime.max_concurrent_sequences
    assert settings.host == "0.0.0.0"
    assert settings.unsafe_binding() is None  # keys, or an explicit allow behind the policy
    if t.spec.security.tls:
        assert settings.tls_cert is not None and settings.tls_key is not None
    if t.plan is not None:
        assert settings.max_model_len == t.plan.max_model_len


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_runtime_parses_the_containers_arguments(example: Path) -> None:
    pod = deployment(target_of(example))["spec"]["template"]["spec"]
    args = build_parser().parse_args(pod["containers"][0]["args"])
    assert args.command == "serve"
    for init in pod.get("initContainers", []):
        assert init["command"][0] == "deepseek-runtime"
        verify = build_parser().parse_args(init["command"][1:])
        assert verify.command == "verify-manifest"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_runtime_drains_within_the_grace_period_the_operator_gives(example: Path) -> None:
    """Kubernetes kills a pod terminationGracePeriodSeconds after SIGTERM: the runtime's whole
    shutdown (its default drain budget plus what a shutdown adds) must end before that."""
    pod = deployment(target_of(example))["spec"]["template"]["spec"]
    grace = pod["terminationGracePeriodSeconds"]
    drain = ServerSettings().drain_timeout_s
    assert drain + SHUTDOWN_MARGIN_S <= grace, (drain, SHUTDOWN_MARGIN_S, grace)
