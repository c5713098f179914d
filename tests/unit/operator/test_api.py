from __future__ import annotations

import pytest
from pydantic import ValidationError
from specs import INVALID, VALID, spec

from deepseek_operator.api import (
    AutoscalingMode,
    DeepSeekDeploymentSpec,
    DeepSeekDeploymentStatus,
    error_fields,
    parse_spec,
)


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


@pytest.mark.parametrize(("changes", "field"), INVALID, ids=[f for _, f in INVALID])
def test_invalid_specs_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        DeepSeekDeploymentSpec.model_validate(spec(**changes))
    lines = error_fields(info.value)
    assert any(line.startswith(field) for line in lines), lines


def test_there_are_at_least_25_invalid_specs() -> None:
    assert len(INVALID) >= 25


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
