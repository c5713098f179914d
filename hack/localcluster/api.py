"""Talking to the API server without a client library (this package runs before the venv)."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Api:
    server: str
    token: str
    ca_file: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | list[Any] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self.context(), timeout=10) as response:
            payload = response.read()
        return json.loads(payload) if payload[:1] in (b"{", b"[") else payload.decode()

    def create(self, path: str, body: dict[str, Any]) -> None:
        try:
            self.request("POST", path, body)
        except urllib.error.HTTPError as error:
            if error.code != 409:  # already there: `up` may be finishing a half-made cluster
                raise

    def delete(self, path: str) -> None:
        """Idempotent: an object already gone is what was asked for."""
        try:
            self.request("DELETE", path)
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise

    def exists(self, path: str) -> bool:
        try:
            self.request("GET", path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise
        return True


def probe(url: str, ca_file: Path | None, token: str | None = None) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    try:
        with urllib.request.urlopen(req, context=context, timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def kubeconfig(server: str, ca_file: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "deepseek-local",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "deepseek-local",
                "context": {"cluster": "deepseek-local", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "deepseek-local",
    }
