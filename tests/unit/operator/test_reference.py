from __future__ import annotations

from pathlib import Path

from deepseek_operator.reference import cr_reference, refresh_readme, sizing_table

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_tables_are_generated_and_fresh() -> None:
    text = README.read_text()
    assert refresh_readme(text) == text, "README tables are stale: run `make readme`"


def test_reference_lists_every_top_level_field() -> None:
    table = cr_reference()
    for field in [
        "spec.model.name",
        "spec.quantization",
        "spec.resources.gpu.count",
        "spec.autoscaling.targetQueueLength",
        "spec.security.allowFrom",
    ]:
        assert f"`{field}`" in table


def test_sizing_table_matches_the_issue_examples() -> None:
    table = sizing_table()
    row = next(line for line in table.splitlines() if "| DeepSeek-R1-Distill-Qwen-7B |" in line)
    assert row.split("|")[4].strip().startswith("1 ")  # bf16 on one A100 40GB
    r1 = next(line for line in table.splitlines() if "| DeepSeek-R1 |" in line)
    assert r1.split("|")[6].strip().startswith("8x4 / 8x2 ")  # bf16, fp8 on H100: nodes
    assert r1.split("|")[3].strip().startswith("- ")  # bf16 on L4: more than 8 nodes
