#!/usr/bin/python3
"""Debian's python3-kubernetes against kaito-kube-shim: CustomObjectsApi create, get,
list, watch, patch and delete of a Workspace, as a Kubernetes program would do them.
Usage: kube_python_client.py KUBECONFIG. Exits non-zero on the first failure."""
import sys
import threading

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION, PLURAL, NS = "kaito.sh", "v1beta1", "workspaces", "python"


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def workspace(name):
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "labels": {"suite": "python"}},
        "resource": {"instanceType": "Standard_NC24ads_A100_v4",
                     "labelSelector": {"matchLabels": {"apps": "phi-4"}}},
        "inference": {"preset": {"name": "phi-4-mini-instruct"}},
    }


def main():
    config.load_kube_config(config_file=sys.argv[1])
    api = client.CustomObjectsApi()

    created = api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, workspace("py-ws"))
    check(created["metadata"]["name"] == "py-ws", "create returns the object")
    check(created["metadata"].get("resourceVersion"), "create sets resourceVersion")

    try:
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, workspace("py-ws"))
        check(False, "a second create fails")
    except ApiException as e:
        check(e.status == 409, "a second create is 409 (got %s)" % e.status)

    got = api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-ws")
    check(got["resource"]["instanceType"] == "Standard_NC24ads_A100_v4", "get")

    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                               label_selector="suite=python")
    check([i["metadata"]["name"] for i in listed["items"]] == ["py-ws"], "list by label")
    check(listed["kind"] == "WorkspaceList", "list kind")
    none = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL,
                                             label_selector="suite=other")
    check(none["items"] == [], "list by a label nobody has")

    seen = []
    done = threading.Event()

    def watcher():
        w = watch.Watch()
        for event in w.stream(api.list_namespaced_custom_object, GROUP, VERSION, NS, PLURAL,
                              resource_version=listed["metadata"]["resourceVersion"],
                              timeout_seconds=30):
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "MODIFIED":
                w.stop()
        done.set()

    t = threading.Thread(target=watcher)
    t.start()
    patched = api.patch_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, "py-ws", {"metadata": {"labels": {"patched": "yes"}}})
    check(patched["metadata"]["labels"].get("patched") == "yes", "merge patch")
    check(done.wait(30), "watch ended")
    check(("MODIFIED", "py-ws") in seen, "watch saw MODIFIED (%s)" % seen)

    try:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nope")
        check(False, "get of a missing workspace fails")
    except ApiException as e:
        check(e.status == 404, "missing is 404 (got %s)" % e.status)

    api.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "py-ws")
    print("ok: delete")

    core = client.CoreV1Api()
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py-cm"), data={"a": "b"})
    core.create_namespaced_config_map(NS, cm)
    check(core.read_namespaced_config_map("py-cm", NS).data == {"a": "b"}, "configmap round trip")
    core.delete_namespaced_config_map("py-cm", NS)
    print("ok: configmap delete")


main()
