"""Locust load test for a deployed DeepSeek endpoint: streaming /v1/chat/completions.

    DEEPSEEK_API_KEY=sk-... DEEPSEEK_MODEL=deepseek-r1 \\
        .venv/bin/locust -f bench/locustfile.py --headless -u 32 -r 4 -t 2m \\
        --host https://deepseek.example.internal

Each user sends one streaming chat completion after another (closed loop; `--wait-s` adds a
pause) and records, beside Locust's own row for the POST:
- `TTFT`: request sent -> first streamed text (content or reasoning_content), in ms;
- `stream`: request sent -> end of the stream, with the completion's tokens as its "size"
  (from `stream_options.include_usage`), so the size column's total over the run's duration
  is the generated tokens/s; the run also prints that at the end.

The run is bounded by Locust's own flags: -u users, -r spawn rate, -t duration (always pass
-t with --headless). Options (flag or environment variable): --model-name / DEEPSEEK_MODEL
(default: the first of /v1/models), --max-tokens / DEEPSEEK_MAX_TOKENS (64),
--prompt / DEEPSEEK_PROMPT, --ignore-eos / DEEPSEEK_IGNORE_EOS (the runtime's extension:
every answer is exactly max-tokens long), --wait-s / DEEPSEEK_WAIT_S (0). The API key comes
from DEEPSEEK_API_KEY only (never a flag, so it stays out of process listings). For a private
CA set REQUESTS_CA_BUNDLE.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from locust import HttpUser, events, task

DEFAULT_PROMPT = "Explain in two sentences what a Kubernetes operator does."
_totals = {"tokens": 0, "streams": 0, "first": 0.0, "last": 0.0}
_lock = threading.Lock()


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    group = parser.add_argument_group("deepseek")
    group.add_argument(
        "--model-name",
        env_var="DEEPSEEK_MODEL",
        default="",
        help="served model id (default: the first of /v1/models)",
    )
    group.add_argument("--max-tokens", env_var="DEEPSEEK_MAX_TOKENS", type=int, default=64)
    group.add_argument("--prompt", env_var="DEEPSEEK_PROMPT", default=DEFAULT_PROMPT)
    group.add_argument(
        "--ignore-eos",
        env_var="DEEPSEEK_IGNORE_EOS",
        action="store_true",
        default=False,
        help="generate exactly --max-tokens (runtime extension)",
    )
    group.add_argument(
        "--wait-s",
        env_var="DEEPSEEK_WAIT_S",
        type=float,
        default=0.0,
        help="pause between one user's requests",
    )


def _fire(environment: Any, name: str, ms: float, size: int, exc: Exception | None = None) -> None:
    environment.events.request.fire(
        request_type="STREAM",
        name=name,
        response_time=ms,
        response_length=size,
        exception=exc,
        context={},
    )


class ChatStreamUser(HttpUser):
    backoff_s = 0.0  # after a failure: Retry-After, else 1 s, so errors do not spin

    def wait_time(self) -> float:
        pause, self.backoff_s = self.backoff_s, 0.0
        return float(self.environment.parsed_options.wait_s or 0.0) + pause

    def on_start(self) -> None:
        key = os.environ.get("DEEPSEEK_API_KEY", "")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        opts = self.environment.parsed_options
        self.model = opts.model_name
        if not self.model:
            with self.client.get(
                "/v1/models", headers=self.headers, catch_response=True, name="/v1/models"
            ) as resp:
                models = (resp.json().get("data") if resp.ok else None) or [{}]
                self.model = models[0].get("id", "")
                if not self.model:
                    resp.failure(f"cannot tell the model: HTTP {resp.status_code}")
        self.body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": opts.prompt}],
            "max_tokens": opts.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if opts.ignore_eos:
            self.body["ignore_eos"] = True

    @task
    def chat_stream(self) -> None:
        start = time.perf_counter()
        first: float | None = None
        tokens = 0
        error: Exception | None = None
        with self.client.post(
            "/v1/chat/completions",
            json=self.body,
            headers=self.headers,
            stream=True,
            catch_response=True,
            name="/v1/chat/completions (stream)",
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                retry = resp.headers.get("Retry-After", "")
                self.backoff_s = min(float(retry), 30.0) if retry.isdigit() else 1.0
                return
            try:
                for line in resp.iter_lines():
                    if not line.startswith(b"data: "):
                        continue
                    data = line[6:].strip()
                    if data == b"[DONE]":
                        break
                    event = json.loads(data)
                    if "error" in event:
                        raise RuntimeError(str(event["error"].get("message", event["error"])))
                    for choice in event.get("choices") or []:
                        delta = choice.get("delta") or {}
                        if first is None and (
                            delta.get("content") or delta.get("reasoning_content")
                        ):
                            first = time.perf_counter()
                            _fire(self.environment, "TTFT", (first - start) * 1000, 0)
                    if event.get("usage"):
                        tokens = int(event["usage"].get("completion_tokens") or 0)
                if first is None:
                    raise RuntimeError("the stream ended without any text")
            except Exception as exc:  # a broken stream is a failed request, not a crash
                error = exc
                resp.failure(str(exc)[:200])
                self.backoff_s = 1.0
        end = time.perf_counter()
        _fire(self.environment, "stream", (end - start) * 1000, tokens, error)
        if error is None:
            with _lock:
                _totals["tokens"] += tokens
                _totals["streams"] += 1
                _totals["first"] = _totals["first"] or start
                _totals["last"] = max(_totals["last"], end)


@events.quitting.add_listener
def _report(environment: Any, **_: Any) -> None:
    span = _totals["last"] - _totals["first"]
    if _totals["streams"] and span > 0:
        print(
            f"deepseek: {_totals['streams']} streams, {_totals['tokens']} tokens, "
            f"{_totals['tokens'] / span:,.0f} generated tokens/s"
        )
