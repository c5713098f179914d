from __future__ import annotations

import pytest
from pydantic import ValidationError
from specs import INVALID, VALID, Invalid, spec

from deepseek_operator.api import (
    AutoscalingMode,
    DeepSeekDeploymentStatus,
    error_fields,
    parse_spec,
)
from deepseek_operator.api.schema import rule_table
from deepseek_operator.crd import openapi_schema


def test_valid_spec_round_trips_in_camel_case() -> None:
    parsed = parse_spec(VALID)
    wire = parsed.wire()
    assert wire["model"]["source"]["pvc"]["claimName"] == "models"
    assert wire["resources"]["gpu"]["resourceName"] == "nvidia.com/gpu"
    assert parse_spec(wire) == parsed


def test_defaults_are_what_the_readme_says() -> None:
    parsed = parse_spec({"model": {"name": "m", "source": {"image": {}}}})
    assert parsed.quantization == "none"
    assert parsed.replicas == 1
    assert parsed.autoscaling_mode == AutoscalingMode.none
    assert parsed.resources.gpu.count == "auto"
    assert parsed.runtime.max_concurrent_sequences == 32
    assert parsed.model.source.image is not None and parsed.model.source.image.path == "/models"


def test_autoscaling_block_defaults_to_hpa() -> None:
    assert parse_spec(spec(autoscaling={})).autoscaling_mode == AutoscalingMode.hpa


def test_gpu_count_accepts_auto_and_integers() -> None:
    assert parse_spec(spec(**{"resources.gpu.count": 4})).resources.gpu.count == 4
    assert parse_spec(spec(**{"resources.gpu.count": "auto"})).resources.gpu.count == "auto"


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_invalid_specs_name_the_field_and_the_rule(case: Invalid) -> None:
    with pytest.raises(ValidationError) as info:
        parse_spec(case.spec())
    lines = error_fields(info.value)
    named = [line for line in lines if line.startswith(case.field)]
    assert named, lines
    if case.rule is not None:
        assert any(line == f"{case.field}: {case.rule}" for line in lines), lines


def test_every_rule_has_an_invalid_case() -> None:
    """A rule added to the API without a case here is a rule nothing shows the API server and
    pydantic both enforce (tests/cluster/test_validation.py sends these cases to both)."""
    claimed = {case.rule for case in INVALID}
    declared = {rule.message for _, rule in rule_table()}
    assert claimed - {None} <= declared, "a case names a rule the API does not declare"
    assert declared <= claimed, f"rules with no invalid case: {declared - claimed}"


def test_a_rule_is_one_message_in_the_crd_and_in_pydantic() -> None:
    """Each rule's CEL sits on the object that declares it, with the message pydantic says."""
    for owner, rule in rule_table():
        schema = openapi_schema(owner)
        assert {"rule": rule.cel, "message": rule.message} in schema["x-kubernetes-validations"]


def test_status_serialises_conditions_in_metav1_shape() -> None:
    status = DeepSeekDeploymentStatus.model_validate(
        {
            "phase": "Ready",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Available",
                    "message": "1/1",
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "gpuPlan": {"gpusPerReplica": 1, "tensorParallel": 1, "gpuMemoryGiB": 80.0},
        }
    )
    wire = status.wire()
    assert wire["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert wire["gpuPlan"]["gpuMemoryGiB"] == 80.0
