"""A spec change rolls the runtime pod while a client keeps sending requests through the Service:
none fails. The new pod starts first (rollout maxSurge 1), the old one leaves the endpoints and
keeps serving through its preStop wait, then drains. A deleted pod comes back Ready."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from clusterkit import Kubectl, wait_until
from openai import AsyncOpenAI
from realnode import RealOperator, describe_pods, node_images, smollm2_objects, wait_serving

pytestmark = pytest.mark.timeout(1200)
NAME = "rolling"
CLIENTS = 2
ROLLED_WITHIN = 600.0  # a second model load on two cores busy serving the first


@dataclass
class Load:
    """Requests sent back to back by CLIENTS asyncio clients (the official client, its default
    retries), counted: answered, failed, and attempts (an attempt over one per request is a
    retry the client made on its own)."""

    cluster_ip: str
    answered: int = 0
    attempts: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        asyncio.run(self._clients())

    async def _clients(self) -> None:
        async def count(_: httpx.Request) -> None:
            self.attempts += 1

        http = httpx.AsyncClient(event_hooks={"request": [count]}, timeout=60)
        client = AsyncOpenAI(
            base_url=f"http://{self.cluster_ip}:8080/v1", api_key="unused", http_client=http
        )
        await asyncio.gather(*(self._client(client, i) for i in range(CLIENTS)))
        await http.aclose()

    async def _client(self, client: AsyncOpenAI, index: int) -> None:
        while not self.stop.is_set():
            try:
                reply = await client.chat.completions.create(
                    model="HuggingFaceTB/SmolLM2-135M-Instruct",
                    messages=[{"role": "user", "content": f"Count to {index + 3}."}],
                    max_tokens=8,
                    temperature=0,
                )
                assert reply.choices[0].finish_reason in ("stop", "length"), reply
                self.answered += 1
            except Exception as error:  # counted, and the client goes on, as a user's would
                self.failures.append(f"{type(error).__name__}: {error}")


def runtime_pods(ns: Kubectl) -> list[dict[str, Any]]:
    return ns.items("pods", f"app.kubernetes.io/instance={NAME}")


def test_a_spec_change_rolls_the_pod_without_a_failed_request(
    cluster: Any, kubectl: Kubectl, real_operator: RealOperator
) -> None:
    ns = kubectl.ns(real_operator.watched)
    cr = smollm2_objects(NAME, node_images(cluster.run_dir)["runtime"], "")[1]
    del cr["spec"]["model"]["integrity"]
    ns.apply(cr)
    served = wait_serving(ns, NAME)
    old_pod = served.pod["metadata"]["name"]
    server = served.pod["spec"]["containers"][0]
    assert server["lifecycle"]["preStop"]["sleep"]["seconds"] > 0, server.get("lifecycle")

    load = Load(served.cluster_ip)
    sender = threading.Thread(target=load.run, daemon=True)
    sender.start()
    wait_until(lambda: load.answered >= 2, 120, "requests answered before the rollout")
    before = load.answered
    # A change a user makes: how long the scheduler waits to fill a batch. It changes the
    # runtime's config, so the operator rolls the pod.
    ns("patch", "dsd", NAME, "--type=merge", "-p", '{"spec":{"runtime":{"maxQueueDelayMs":7}}}')
    generation = ns.get("dsd", NAME)["metadata"]["generation"]  # type: ignore[index]

    def rolled() -> str | None:
        pods = runtime_pods(ns)
        names = [p["metadata"]["name"] for p in pods]
        live = [
            p
            for p in pods
            if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses") or [])
        ]
        if old_pod in names or len(live) != 1:
            return None
        status = (ns.get("dsd", NAME) or {}).get("status") or {}
        done = status.get("phase") == "Ready" and status.get("observedGeneration") == generation
        return str(live[0]["metadata"]["name"]) if done else None

    try:
        new_pod = wait_until(
            rolled, ROLLED_WITHIN, "the new pod serving and the old one gone", interval=2,
            describe=lambda: describe_pods(ns),
        )  # fmt: skip
        after = load.answered
        wait_until(lambda: load.answered >= after + 2, 120, "requests answered by the new pod")
    finally:
        load.stop.set()
        sender.join(timeout=90)
    assert new_pod != old_pod
    assert load.failures == [], load.failures[:5]
    assert load.answered > before + 2, (before, load.answered)
    retries = load.attempts - load.answered
    print(f"rollout: {load.answered} requests answered, none failed, {retries} client retries")

    # Deleted by hand (a node drain, an operator's mistake): the Deployment makes a new one.
    ns("delete", "pod", new_pod, "--wait=false")

    def back() -> bool:
        pods = [p for p in runtime_pods(ns) if p["metadata"]["name"] != new_pod]
        ready = [
            p
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
        ]
        status = (ns.get("dsd", NAME) or {}).get("status") or {}
        return bool(ready) and status.get("phase") == "Ready"

    wait_until(back, ROLLED_WITHIN, "a new pod Ready after kubectl delete pod", interval=2,
               describe=lambda: describe_pods(ns))  # fmt: skip
    ns("delete", "dsd", NAME, "--wait=true", "--timeout=120s")
