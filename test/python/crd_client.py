"""Drives the nbswarm API server with the official Python client (Debian python3-kubernetes).

Usage: /usr/bin/python3 crd_client.py KUBECONFIG
Prints one JSON object with what it saw; the mocha test asserts on it.
"""
import json
import sys
import threading

from kubernetes import client, config, watch

G, V, P, NS = "example.nbswarm.io", "v1", "widgets", "default"


def main() -> None:
    config.load_kube_config(config_file=sys.argv[1])
    api = client.CustomObjectsApi()
    out = {}
    body = {"apiVersion": f"{G}/{V}", "kind": "Widget", "metadata": {"name": "py1", "labels": {"from": "python"}}, "spec": {"user": "pyuser"}}
    created = api.create_namespaced_custom_object(G, V, NS, P, body)
    out["created"] = {"name": created["metadata"]["name"], "size": created["spec"]["size"], "generation": created["metadata"]["generation"]}
    listed = api.list_namespaced_custom_object(G, V, NS, P, label_selector="from=python")
    out["listed"] = [i["metadata"]["name"] for i in listed["items"]]
    rv = listed["metadata"]["resourceVersion"]
    status = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    patched = api.patch_namespaced_custom_object_status(G, V, NS, P, "py1", status)
    out["status"] = patched["status"]["phase"]
    out["spec_after_status"] = patched["spec"]["user"]
    try:
        api.create_namespaced_custom_object(G, V, NS, P, {**body, "metadata": {"name": "py-bad"}, "spec": {"size": "x"}})
        out["invalid"] = None
    except client.exceptions.ApiException as e:
        out["invalid"] = {"status": e.status, "causes": [c["field"] for c in json.loads(e.body)["details"]["causes"]]}

    def later() -> None:
        api.create_namespaced_custom_object(G, V, NS, P, {**body, "metadata": {"name": "py2", "labels": {"from": "python"}}})

    events = []
    w = watch.Watch()
    timer = threading.Timer(0.3, later)
    timer.start()
    for ev in w.stream(api.list_namespaced_custom_object, G, V, NS, P, resource_version=rv, label_selector="from=python", timeout_seconds=10):
        events.append(f'{ev["type"]}:{ev["object"]["metadata"]["name"]}')
        if ev["object"]["metadata"]["name"] == "py2":
            w.stop()
    timer.join()
    out["watched"] = events
    print(json.dumps(out))


if __name__ == "__main__":
    main()
