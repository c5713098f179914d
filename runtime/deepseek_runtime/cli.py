"""`deepseek-runtime`: serve | manifest | hash-key.

Every `serve` flag is also a `DEEPSEEK_RUNTIME_<NAME>` environment variable and a key of the
YAML `--config FILE`; flags win over env, env over the file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepseek_runtime.config import SettingsError, load_settings
from deepseek_runtime.integrity import (
    ManifestError,
    build_manifest,
    dump_manifest,
    verify_manifest,
)
from deepseek_runtime.security import hash_key

S = argparse.SUPPRESS  # unset flags stay absent, so env and the config file can fill them


def _bool(parser: argparse.ArgumentParser, name: str, help_: str) -> None:
    parser.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=S, help=help_)


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="serve a model (OpenAI API + Triton)", argument_default=S)
    p.add_argument("--config", type=Path, help="YAML file of settings (same keys as flags)")
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        help="HF model directory or GGUF directory/file "
        "(default: the bundled SmolLM2-135M-Instruct GGUF)",
    )
    g.add_argument("--gguf-file", help="GGUF file name inside --model")
    g.add_argument("--dtype", help="auto | float32 | bfloat16 | float16")
    g.add_argument("--quantization", help="none | bf16 | fp16 | int8 | ...")
    g.add_argument("--served-model-name", help="model id clients use (default: from the model)")
    g.add_argument("--max-num-seqs", type=int, help="sequences generated at once (default 32)")
    g.add_argument("--max-queue", type=int, help="waiting requests before 429 (default 256)")
    g.add_argument("--max-model-len", type=int, help="context cap, prompt + output tokens")
    g.add_argument(
        "--max-num-batched-tokens", type=int, help="prompt tokens per prefill step (default 4096)"
    )
    g.add_argument("--kv-cache-tokens", type=int, help="KV cache budget in tokens")
    g.add_argument("--torch-threads", type=int, help="default: all cores but one")
    g.add_argument(
        "--reasoning",
        choices=["auto", "on", "off"],
        help="split <think>...</think> into reasoning_content (default auto)",
    )
    g = p.add_argument_group("network")
    g.add_argument("--host", help="address to bind (default 127.0.0.1)")
    g.add_argument("--port", type=int, help="OpenAI API, /metrics, probes (default 8080)")
    _bool(g, "triton", "start Triton (default on; --no-triton for fast tests)")
    g.add_argument("--triton-http-port", type=int, help="KServe v2 HTTP (default 8000)")
    g.add_argument("--triton-grpc-port", type=int, help="KServe v2 gRPC (default 8001)")
    g.add_argument("--triton-metrics-port", type=int, help="Triton's metrics (default 8002)")
    g.add_argument("--triton-chunk-ms", type=float, help="coalesce streamed tokens (default 200)")
    g.add_argument(
        "--stream-interval-tokens", type=int, help="wake a stream every N tokens (default 4)"
    )
    g.add_argument(
        "--triton-max-batch-size", type=int, help="dynamic batcher batch (default max-num-seqs)"
    )
    g.add_argument(
        "--triton-max-queue-delay-ms", type=float, help="dynamic batcher wait (default 2)"
    )
    g.add_argument("--max-body-bytes", type=int, help="largest request body (default 4 MiB)")
    g.add_argument("--drain-timeout-s", type=float, help="SIGTERM drain budget (default 30)")
    g.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    g = p.add_argument_group("security")
    g.add_argument("--api-keys", type=Path, help="YAML list of {name, role, sha256}")
    _bool(g, "allow-unauthenticated", "allow binding beyond loopback without API keys")
    _bool(g, "metrics-auth", "require an auditor/admin key for /metrics")
    g.add_argument("--rate-limit-rps", type=float, help="per-key requests/s (default 10; 0 off)")
    g.add_argument("--rate-limit-burst", type=float, help="per-key burst (default 20)")
    g.add_argument("--tls-cert", type=Path, help="PEM certificate (chain) for HTTPS")
    g.add_argument("--tls-key", type=Path, help="PEM private key for HTTPS")
    g.add_argument("--tls-min-version", choices=["1.2", "1.3"], help="default 1.2")
    g.add_argument(
        "--verify-manifest",
        type=Path,
        help="refuse to start unless the weights match this manifest (see `manifest`)",
    )
    g.add_argument("--audit-log", type=Path, help="JSON-lines audit log file")
    _bool(g, "audit-include-text", "write prompt and completion text into the audit log")
    g.add_argument("--audit-max-bytes", type=int, help="rotate the audit log at this size")
    g.add_argument("--audit-backups", type=int, help="rotated audit files kept (default 5)")
    g.add_argument("--output-filter", type=Path, help="file of regexes that end an output")
    g.add_argument(
        "--output-filter-holdback",
        type=int,
        help="characters a stream holds back for the filter (default 64)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepseek-runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    m = sub.add_parser("manifest", help="write a SHA-256 manifest of a model directory")
    m.add_argument("directory", type=Path)
    m.add_argument(
        "-o", "--output", type=Path, help="file to write (.json or .yaml); default stdout"
    )
    v = sub.add_parser(
        "verify-manifest", help="check a model directory against a manifest; exit 1 on mismatch"
    )
    v.add_argument("manifest", type=Path)
    v.add_argument("directory", type=Path)
    v.add_argument(
        "--termination-log",
        type=Path,
        default=Path("/dev/termination-log"),
        help="where Kubernetes reads why a container ended (written when it exists)",
    )
    sub.add_parser("hash-key", help="print the SHA-256 of an API key read from stdin")
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def cmd_manifest(args: argparse.Namespace) -> int:
    _logging("info")
    root: Path = args.directory
    if not root.is_dir():
        print(f"error: {root} is not a directory", file=sys.stderr)
        return 2
    out: Path | None = args.output
    exclude: tuple[str, ...] = ()
    if out is not None and out.resolve().parent.is_relative_to(root.resolve()):
        exclude = (out.resolve().relative_to(root.resolve()).as_posix(),)
    text = dump_manifest(build_manifest(root, exclude), out)
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_verify_manifest(args: argparse.Namespace) -> int:
    """The operator's init container: the first problem goes to the termination log, where the
    operator reads it into the WeightsVerified condition."""
    _logging("info")
    try:
        report = verify_manifest(args.directory, args.manifest)
    except (ManifestError, OSError) as exc:
        problems = [f"{args.manifest}: {exc}"]
    else:
        problems = report.problems()
        if not problems:
            print(f"ok: {report.checked} files match {args.manifest}", file=sys.stderr)
            return 0
    message = "; ".join(problems)
    for line in problems:
        print(f"error: {line}", file=sys.stderr)
    if args.termination_log.parent.is_dir():
        with contextlib.suppress(OSError):
            args.termination_log.write_text(message[:4000])
    return 1


def cmd_hash_key() -> int:
    key = sys.stdin.readline().strip()
    if not key:
        print("error: no key on stdin", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from deepseek_runtime.server import StartupError, run

    cli = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    try:
        settings = load_settings(cli, os.environ, getattr(args, "config", None))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _logging(settings.log_level)
    try:
        return run(settings)
    except StartupError as exc:
        logging.getLogger("deepseek_runtime").error("%s", exc)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "manifest":
        return cmd_manifest(args)
    if args.command == "verify-manifest":
        return cmd_verify_manifest(args)
    if args.command == "hash-key":
        return cmd_hash_key()
    return cmd_serve(args)


if __name__ == "__main__":
    sys.exit(main())
