from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from specs import cr

from deepseek_operator.cli import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    "example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_render_every_example(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "-f", str(example)]) == 0
    kinds = [d["kind"] for d in yaml.safe_load_all(capsys.readouterr().out)]
    for kind in ["ServiceAccount", "ConfigMap", "Service", "NetworkPolicy", "PodDisruptionBudget"]:
        assert kind in kinds
    assert ("Deployment" in kinds) != ("LeaderWorkerSet" in kinds)  # one runs the pods


def test_render_a_group_name_too_long_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changes = {"model.name": "deepseek-ai/DeepSeek-R1", "quantization": "bf16"}
    changes["resources.gpu"] = {"product": "NVIDIA-H100-80GB-HBM3"}
    long = tmp_path / "r1.yaml"
    long.write_text(yaml.safe_dump(cr("r" * 49, **changes)))
    assert main(["render", "-f", str(long)]) == 2
    assert "metadata.name: 4 nodes per replica" in capsys.readouterr().err
    long.write_text(yaml.safe_dump(cr("r" * 48, **changes)))
    assert main(["render", "-f", str(long)]) == 0
    assert "kind: LeaderWorkerSet" in capsys.readouterr().out


def test_render_invalid_exits_2_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cr(**{"autoscaling": {"minReplicas": 3, "maxReplicas": 1}})))
    assert main(["render", "-f", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "spec.autoscaling" in captured.err and "minReplicas" in captured.err


def test_render_unservable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "r1.yaml"
    bad.write_text(
        yaml.safe_dump(
            cr(
                **{
                    "model.name": "deepseek-ai/DeepSeek-R1",
                    "quantization": "bf16",
                    "resources.gpu": {"product": "NVIDIA-L4"},
                }
            )
        )
    )
    assert main(["render", "-f", str(bad)]) == 2
    assert "What would fit" in capsys.readouterr().err


def test_size_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "size",
                "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B",
                "--quantization",
                "bf16",
                "--gpu",
                "NVIDIA-A100-SXM4-40GB",
                "--json",
            ]
        )
        == 0
    )
    plan = json.loads(capsys.readouterr().out)
    assert plan["fits"] is True and plan["gpusPerReplica"] == 1


def test_size_too_big_for_one_node(capsys: pytest.CaptureFixture[str]) -> None:
    command = ["size", "deepseek-ai/DeepSeek-R1", "-q", "bf16", "--gpu", "h100"]
    assert main([*command, "--max-nodes", "1"]) == 2
    assert "one node offers" in capsys.readouterr().err
    assert main(command) == 0  # a group of nodes, by default
    assert "(8 per node x 4 nodes), TP=32" in capsys.readouterr().out


def test_size_reads_a_local_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "hidden_size": 512,
                "num_hidden_layers": 4,
                "num_attention_heads": 8,
                "num_key_value_heads": 2,
                "intermediate_size": 1024,
                "vocab_size": 32000,
                "max_position_embeddings": 4096,
            }
        )
    )
    assert main(["size", str(tmp_path), "--gpu", "NVIDIA-L4", "--max-model-len", "2048"]) == 0
    assert "1 x NVIDIA-L4" in capsys.readouterr().out


def test_crd_prints_yaml(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crd"]) == 0
    assert (
        yaml.safe_load(capsys.readouterr().out.split("\n", 2)[2])["kind"]
        == "CustomResourceDefinition"
    )
