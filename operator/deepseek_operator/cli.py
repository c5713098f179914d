"""``deepseek-operator``: run | render | size | crd."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from deepseek_operator.api import API_VERSION, DEFAULT_MAX_NODES, KIND, Quantization
from deepseek_operator.catalog import GPUS, facts_from_directory, find_gpu, find_model
from deepseek_operator.crd import crd_yaml
from deepseek_operator.manifests import children
from deepseek_operator.reconcile import validate
from deepseek_operator.sizing import SizingError, check_product, plan

EXIT_INVALID = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deepseek-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator (kopf) against KUBECONFIG or in-cluster")
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    run.add_argument(
        "--liveness", default=None, help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument("--verbose", action="store_true")

    render = sub.add_parser("render", help="print every child of a DeepSeekDeployment as YAML")
    render.add_argument("-f", "--filename", required=True, help="CR file ('-' for stdin)")
    render.add_argument("--namespace", default=None, help="namespace when the CR has none")

    size = sub.add_parser("size", help="plan GPUs for a model")
    size.add_argument("model", help="catalogue model id or a local model directory")
    size.add_argument(
        "--quantization", "-q", default="none", choices=[q.value for q in Quantization]
    )
    size.add_argument("--gpu", default="NVIDIA-H100-80GB-HBM3", help="GPU product")
    size.add_argument("--max-model-len", type=int, default=None)
    size.add_argument("--concurrency", type=int, default=32)
    size.add_argument("--max-per-node", type=int, default=8, help="GPUs one node offers")
    size.add_argument(
        "--max-nodes",
        type=int,
        default=DEFAULT_MAX_NODES,
        help="most nodes per replica (a LeaderWorkerSet group); 1: one node only",
    )
    size.add_argument("--json", action="store_true")

    sub.add_parser("crd", help="print the CustomResourceDefinition")

    args = parser.parse_args(argv)
    handler = {"run": _run, "render": _render, "size": _size, "crd": _crd}[args.command]
    return handler(args)


def _crd(_: argparse.Namespace) -> int:
    sys.stdout.write(crd_yaml())
    return 0


def _run(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", "kopf", "run", "--standalone", "-m", "deepseek_operator.handlers"]
    cmd += [f"--namespace={ns}" for ns in args.namespace] or ["--all-namespaces"]
    if args.liveness:
        cmd.append(f"--liveness={args.liveness}")
    if args.verbose:
        cmd.append("--verbose")
    # The drift repair lists only what kopf watches (a namespaced Role cannot list cluster-wide).
    os.environ["DEEPSEEK_WATCH_NAMESPACES"] = ",".join(args.namespace)
    os.execv(sys.executable, cmd)  # replace this process: signals reach kopf directly


def _invalid(lines: list[str]) -> int:
    for line in lines:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_INVALID


def _render(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
    try:
        docs = [d for d in yaml.safe_load_all(text) if d]
    except yaml.YAMLError as exc:
        return _invalid([f"{args.filename}: not YAML: {exc}"])
    out: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            return _invalid([f"{args.filename}: expected kind {KIND} ({API_VERSION})"])
        if doc.get("apiVersion") != API_VERSION:
            return _invalid([f"apiVersion: expected {API_VERSION}, got {doc.get('apiVersion')}"])
        meta = doc.setdefault("metadata", {})
        if not meta.get("name"):
            return _invalid(["metadata.name: required"])
        meta.setdefault("namespace", args.namespace or "default")
        target, problems = validate(doc)
        if target is None:
            return _invalid(problems)
        out.extend(children(target))
    sys.stdout.write(yaml.safe_dump_all(out, sort_keys=False))
    return 0


def _size(args: argparse.Namespace) -> int:
    local = Path(args.model)
    facts = (
        facts_from_directory(local) if (local / "config.json").is_file() else find_model(args.model)
    )
    if facts is None:
        return _invalid(
            [
                f"model {args.model!r} is not in the catalogue and is not a directory "
                "with config.json"
            ]
        )
    gpu = find_gpu(args.gpu)
    if gpu is None:
        return _invalid(
            [f"unknown GPU {args.gpu!r}; known: {', '.join(g.product for g in GPUS.values())}"]
        )
    try:
        check_product(gpu, facts, args.quantization)
        result = plan(
            facts,
            args.quantization,
            gpu_memory_gib=gpu.memory_gib,
            product=gpu.product,
            max_model_len=args.max_model_len,
            concurrency=args.concurrency,
            max_per_node=args.max_per_node,
            max_nodes=args.max_nodes,
        )
    except SizingError as exc:
        if args.json:
            print(json.dumps({"fits": False, "field": exc.field_path, "message": str(exc)}))
        return _invalid([str(exc)])
    if args.json:
        print(json.dumps({"fits": True, **result.status().wire()}, indent=2))
    else:
        print(result.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
