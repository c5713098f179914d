"""HTTPS (trustme CA, TLS 1.3 minimum), --metrics-auth and the per-key rate limit."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient
import trustme
from devkit.runtime_server import KEYS, RuntimeServer, auth
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.runtime


def test_openai_client_over_tls(tls_server: RuntimeServer) -> None:
    http = httpx.Client(verify=tls_server.verify)
    client = openai.OpenAI(base_url=tls_server.url("/v1"), api_key=KEYS["admin"],
                           http_client=http, max_retries=0)  # fmt: skip
    reply = client.chat.completions.create(
        model=client.models.list().data[0].id, max_tokens=5,
        messages=[{"role": "user", "content": "over TLS"}],
    )  # fmt: skip
    assert reply.usage is not None and reply.usage.completion_tokens > 0


def test_plain_http_on_the_tls_port_fails(tls_server: RuntimeServer) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/health", timeout=5)


def test_unknown_ca_is_refused(tls_server: RuntimeServer) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(tls_server.url("/health"), verify=True, timeout=5)


def test_a_client_trusting_another_ca_is_refused_on_both_doors(
    tls_server: RuntimeServer, tmp_path: Path
) -> None:
    """The broken half of TLS: the same server, verified against a CA that did not sign its
    certificate (as an impostor's would be), fails the handshake on HTTPS and on gRPC."""
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.url("/health"), verify=ssl.create_default_context(cafile=str(other)),
                  timeout=5)  # fmt: skip
    assert httpx.get(tls_server.url("/health"), verify=tls_server.verify).status_code == 200
    impostor = grpcclient.InferenceServerClient(
        f"127.0.0.1:{tls_server.triton_grpc}", ssl=True, root_certificates=str(other)
    )
    with pytest.raises(InferenceServerException):
        impostor.is_server_live(client_timeout=10)


def tls_version(server: RuntimeServer, maximum: ssl.TLSVersion | None = None) -> str | None:
    context = ssl.create_default_context(cafile=str(server.ca))
    if maximum is not None:
        context.maximum_version = maximum
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version()


def test_tls_minimum_version_is_enforced(tls_server: RuntimeServer) -> None:
    assert tls_version(tls_server) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        tls_version(tls_server, maximum=ssl.TLSVersion.TLSv1_2)  # --tls-min-version 1.3


def test_metrics_auth(tls_server: RuntimeServer) -> None:
    with tls_server.client() as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth("inference")).status_code == 403
        r = client.get("/metrics", headers=auth("auditor"))
        assert r.status_code == 200 and "deepseek_requests_waiting" in r.text
        assert client.get("/health").status_code == 200  # probes stay open
        assert client.get("/ready").status_code == 200


def test_the_metrics_port_speaks_tls_and_asks_the_same_key(tls_server: RuntimeServer) -> None:
    with httpx.Client(verify=tls_server.verify, timeout=10) as client:
        assert client.get(tls_server.metrics_url).status_code == 401
        r = client.get(tls_server.metrics_url, headers=auth("auditor"))
        assert r.status_code == 200 and "deepseek_requests_waiting" in r.text
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{tls_server.metrics}/metrics", timeout=5)


def test_triton_grpc_over_tls(tls_server: RuntimeServer) -> None:
    text = grpcclient.InferInput("text_input", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"hello"]], dtype=object))
    # Sampled text from a random model may hit EOS before the filter's three characters;
    # generation must run on until the filter ends it.
    ignore_eos = grpcclient.InferInput("ignore_eos", [1, 1], "BOOL")
    ignore_eos.set_data_from_numpy(np.array([[True]], dtype=bool))
    url = f"127.0.0.1:{tls_server.triton_grpc}"
    secure = grpcclient.InferenceServerClient(url, ssl=True, root_certificates=str(tls_server.ca))
    name = httpx.get(tls_server.url("/v1/models"), headers=auth("admin"),
                     verify=tls_server.verify).json()["data"][0]["id"]  # fmt: skip
    result = secure.infer(f"{name}_sync", [text, ignore_eos], headers=auth("admin"))
    assert result.as_numpy("finish_reason")[0][0] == b"content_filter"
    with pytest.raises(InferenceServerException):
        grpcclient.InferenceServerClient(url).infer(f"{name}_sync", [text], headers=auth("admin"))


def test_output_filter_ends_the_completion(tls_server: RuntimeServer) -> None:
    with tls_server.client() as client:
        body = {"prompt": "Say something", "max_tokens": 40, "ignore_eos": True}
        reply = client.post("/v1/completions", json=body, headers=auth("inference")).json()
        assert reply["choices"][0]["finish_reason"] == "content_filter"
        assert reply["choices"][0]["text"] == ""  # the match starts at the first character
        assert reply["usage"]["completion_tokens"] < 40  # generation stopped at the match
        metrics = client.get("/metrics", headers=auth("auditor")).text
        assert 'deepseek_content_filter_total{door="openai"}' in metrics


def test_triton_rate_limit_per_key(tls_server: RuntimeServer) -> None:
    """Issue 15, item 14: the Triton door applies the per-key limit (burst 5, 0.5/s here) as
    the OpenAI door does, through a real tritonserver over TLS gRPC."""
    from conftest import TLS_EXTRA_KEYS

    key = {"authorization": f"Bearer {TLS_EXTRA_KEYS['triton-app'][1]}"}
    secure = grpcclient.InferenceServerClient(
        f"127.0.0.1:{tls_server.triton_grpc}", ssl=True, root_certificates=str(tls_server.ca)
    )
    # The same bucket serves both doors: this lookup is the key's first request.
    name = httpx.get(tls_server.url("/v1/models"), headers=key,
                     verify=tls_server.verify).json()["data"][0]["id"]  # fmt: skip
    text = grpcclient.InferInput("text_input", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"hi"]], dtype=object))
    limit = grpcclient.InferInput("max_tokens", [1, 1], "INT32")
    limit.set_data_from_numpy(np.array([[1]], dtype=np.int32))
    outcomes = []
    for _ in range(8):
        try:
            secure.infer(f"{name}_sync", [text, limit], headers=key)
            outcomes.append("ok")
        except InferenceServerException as exc:
            outcomes.append("429" if "429 rate_limited" in str(exc) else str(exc))
    assert outcomes[0] == "ok" and outcomes[-1] == "429", outcomes
    assert set(outcomes) == {"ok", "429"} and outcomes.count("ok") <= 5, outcomes
    with tls_server.client() as client:
        metrics = client.get("/metrics", headers=auth("auditor")).text
    assert 'deepseek_rate_limited_total{door="triton"}' in metrics


def test_rate_limit_429_with_retry_after(tls_server: RuntimeServer) -> None:
    """Last in the module: it empties the inference key's bucket."""
    with tls_server.client() as client:
        statuses = []
        for _ in range(8):
            r = client.get("/v1/models", headers=auth("inference"))
            statuses.append(r.status_code)
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        # Another key has its own bucket.
        assert client.get("/v1/models", headers=auth("admin")).status_code == 200
        metrics = client.get("/metrics", headers=auth("auditor")).text
        assert 'deepseek_rate_limited_total{door="openai"}' in metrics
