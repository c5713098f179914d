"""What goes wrong is said in the DeepSeekDeployment's status, in the user's words, from the
pods' real state on the real node (kwok can only pretend): an image the node cannot get, a Secret
that does not exist, a model file that fails to load, a claim that does not exist."""

from __future__ import annotations

from typing import Any

import pytest
from clusterkit import Kubectl, condition, wait_until
from realnode import RealOperator, Served, describe_pods, smollm2_objects

# Each case needs the operator's pod (the shared fixture may install it first).
pytestmark = pytest.mark.timeout(900)
SAID_WITHIN = 180.0  # a minute on an idle machine; CI shares two cores with the whole cluster


def broken(name: str, image: str, change: dict[str, Any]) -> dict[str, Any]:
    cr = smollm2_objects(name, image, "")[1]
    del cr["spec"]["model"]["integrity"]
    for dotted, value in change.items():
        *path, last = dotted.split(".")
        node = cr["spec"]
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return cr


@pytest.mark.parametrize(
    ("name", "change", "reason", "words"),
    [
        (
            "no-image",
            # IfNotPresent makes the node try to pull it: from "localhost", so the attempt
            # never leaves this machine.
            {"runtime.image": "localhost/deepseek-runtime:no-such-tag",
             "runtime.imagePullPolicy": "IfNotPresent"},
            ("ErrImagePull", "ImagePullBackOff"),
            "localhost/deepseek-runtime:no-such-tag",
        ),
        (
            "no-secret",
            {"security.apiKeys": {"secretName": "no-such-keys"}},
            ("FailedMount", "CreateContainerConfigError"),
            'secret "no-such-keys" not found',
        ),
        (
            "bad-model",
            {"model.ggufFile": "missing.gguf"},
            ("CrashLoopBackOff", "RunContainerError"),
            "missing.gguf",
        ),
        (
            "no-claim",
            {"model.source": {"pvc": {"claimName": "no-such-claim"}}},
            ("Unschedulable",),
            'persistentvolumeclaim "no-such-claim" not found',
        ),
    ],
)  # fmt: skip
def test_the_status_says_what_the_pod_says(
    kubectl: Kubectl,
    real_operator: RealOperator,
    smollm2: Served,
    name: str,
    change: dict[str, Any],
    reason: tuple[str, ...],
    words: str,
) -> None:
    ns = kubectl.ns(real_operator.watched)
    ns.apply(broken(name, smollm2.cr["spec"]["runtime"]["image"], change))
    try:
        found = wait_until(
            lambda: next(
                (c for c in [condition(ns.get("dsd", name) or {}, "Ready")]
                 if c and c.get("reason") in reason), None),
            SAID_WITHIN, f"dsd/{name} Ready reason in {reason}", interval=2,
            describe=lambda: str(ns.get("dsd", name)) + describe_pods(ns),
        )  # fmt: skip
        assert words in found["message"], found
        assert found["status"] == "False"
    finally:
        ns("delete", "dsd", name, "--wait=false", check=False)
