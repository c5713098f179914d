"""spec + plan -> every child object, as plain dicts. Pure: no I/O, no Kubernetes client.

Each builder takes a ``Target`` (the resource's name, namespace, validated spec and GPU plan)
and returns one object with ``metadata.name`` set. ``children()`` lists them all in the order
they should be applied. Owner references are added by the reconcile layer.
"""

from deepseek_operator.manifests.children import children, optional_children
from deepseek_operator.manifests.monitoring import service_monitor
from deepseek_operator.manifests.networking import network_policy, service
from deepseek_operator.manifests.pod import pod_template, service_account
from deepseek_operator.manifests.runtime_config import config_hash, config_map, runtime_settings
from deepseek_operator.manifests.scaling import (
    horizontal_pod_autoscaler,
    pod_disruption_budget,
    scaled_object,
)
from deepseek_operator.manifests.target import (
    CONFIG_HASH_ANNOTATION,
    DEPLOYMENT,
    LEADER_WORKER_SET,
    MANAGER,
    QUEUE_METRIC,
    WORKER_INDEX_LABEL,
    Target,
    endpoint,
    selector,
    selector_labels,
    serving_selector,
)
from deepseek_operator.manifests.workloads import (
    MAX_GROUP_NAME_LENGTH,
    deployment,
    leader_worker_set,
    workload,
)

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "DEPLOYMENT",
    "LEADER_WORKER_SET",
    "MANAGER",
    "MAX_GROUP_NAME_LENGTH",
    "QUEUE_METRIC",
    "WORKER_INDEX_LABEL",
    "Target",
    "children",
    "config_hash",
    "config_map",
    "deployment",
    "endpoint",
    "horizontal_pod_autoscaler",
    "leader_worker_set",
    "network_policy",
    "optional_children",
    "pod_disruption_budget",
    "pod_template",
    "runtime_settings",
    "scaled_object",
    "selector",
    "selector_labels",
    "service",
    "service_account",
    "service_monitor",
    "serving_selector",
    "workload",
]
