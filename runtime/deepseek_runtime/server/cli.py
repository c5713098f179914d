"""`deepseek-runtime`: serve | worker | manifest | verify-manifest | hash-key.

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

from deepseek_runtime.guards.integrity import (
    ManifestError,
    build_manifest,
    dump_manifest,
    verify_manifest,
)
from deepseek_runtime.guards.keys import hash_key
from deepseek_runtime.server.flags import add_serve_flags
from deepseek_runtime.settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepseek-runtime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve a model (OpenAI API + Triton)")
    serve.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS,
        help="YAML file of settings (same keys as flags)",
    )
    add_serve_flags(serve)
    worker = sub.add_parser(
        "worker", help="one tensor-parallel rank that follows rank 0 (serve starts these)"
    )
    worker.add_argument("--rank", type=int, required=True, help="this process's global rank")
    worker.add_argument(
        "--config", type=Path, default=argparse.SUPPRESS, help="YAML file of serve's settings"
    )
    add_serve_flags(worker)
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
    """serve, or in a LeaderWorkerSet worker pod (LWS_WORKER_INDEX > 0) follow the leader:
    every pod of a group runs the same `serve --config FILE`."""
    from deepseek_runtime.server.run import run
    from deepseek_runtime.server.startup import StartupError
    from deepseek_runtime.server.worker import place, run_pod, run_rank

    cli = {k: v for k, v in vars(args).items() if k not in ("command", "config", "rank")}
    try:
        settings = load_settings(cli, os.environ, getattr(args, "config", None))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _logging(settings.log_level)
    try:
        where = place(settings)
        if args.command == "worker":
            return run_rank(settings, where.with_rank(args.rank))
        return run(settings, where) if where.serves else run_pod(settings, where)
    except (StartupError, ValueError) as exc:
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
