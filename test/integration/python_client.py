#!/usr/bin/python3
"""An independent client of kaito-server: Python stubs generated from proto/ by the
build (Debian's python3-grpcio). Exercises the API the way another program would.
Usage: python_client.py HOST:PORT STUBS_DIR. Exits non-zero on the first failure."""
import sys
import threading

sys.path.insert(0, sys.argv[2])

import grpc  # noqa: E402
from kaito.v1 import workspace_pb2, workspace_pb2_grpc  # noqa: E402
from kaito.v1 import config_pb2, config_pb2_grpc  # noqa: E402
from kaito.v1 import meta_pb2  # noqa: E402
from google.protobuf import json_format  # noqa: E402


def check(cond, what):
    if not cond:
        print("FAIL:", what, file=sys.stderr)
        sys.exit(1)
    print("ok:", what)


def expect_code(fn, code, what):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "%s -> %s (got %s: %s)" % (what, code, e.code(), e.details()))
        return e
    check(False, "%s -> %s (call succeeded)" % (what, code))


channel = grpc.insecure_channel(sys.argv[1])
grpc.channel_ready_future(channel).result(timeout=30)
ws = workspace_pb2_grpc.WorkspaceServiceStub(channel)
secrets = config_pb2_grpc.SecretServiceStub(channel)

# A Kaito manifest as JSON parses straight into the message.
manifest = {
    "apiVersion": "kaito.sh/v1beta1",
    "kind": "Workspace",
    "metadata": {"name": "py-phi-4", "labels": {"owner": "python"}},
    "resource": {"instanceType": "Standard_NC24ads_A100_v4",
                 "labelSelector": {"matchLabels": {"apps": "phi-4"}}},
    "inference": {"preset": {"name": "phi-4"}},
}
w = json_format.ParseDict(manifest, workspace_pb2.Workspace())

# Start a watch first, so it sees everything that follows.
events = []
watch_started = threading.Event()


def watch():
    stream = ws.WatchWorkspaces(workspace_pb2.WatchWorkspacesRequest(label_selector="owner=python"))
    try:
        for e in stream:
            events.append(e)
            if e.type == meta_pb2.BOOKMARK:
                watch_started.set()
            if e.type == meta_pb2.DELETED:
                return
    except grpc.RpcError:
        pass


t = threading.Thread(target=watch, daemon=True)
t.start()
check(watch_started.wait(30), "watch started with a bookmark")

created = ws.CreateWorkspace(workspace_pb2.CreateWorkspaceRequest(workspace=w)).workspace
check(created.metadata.resource_version != "", "create returns a resourceVersion")
check(created.metadata.generation == 1, "generation starts at 1")
check(json_format.MessageToDict(created)["resource"]["instanceType"] == "Standard_NC24ads_A100_v4",
      "JSON names are Kaito's")

got = ws.GetWorkspace(workspace_pb2.GetWorkspaceRequest(name="py-phi-4"))
check(got.metadata.uid == created.metadata.uid, "get returns the created object")

lst = ws.ListWorkspaces(workspace_pb2.ListWorkspacesRequest(label_selector="owner=python"))
check(len(lst.items) == 1, "list with a label selector")

expect_code(lambda: ws.CreateWorkspace(workspace_pb2.CreateWorkspaceRequest(workspace=w)),
            grpc.StatusCode.ALREADY_EXISTS, "second create")

bad = workspace_pb2.Workspace()
bad.CopyFrom(w)
bad.metadata.name = "Not_A_DNS_Label"
err = expect_code(lambda: ws.CreateWorkspace(workspace_pb2.CreateWorkspaceRequest(workspace=bad)),
                  grpc.StatusCode.INVALID_ARGUMENT, "invalid name")
check("metadata.name" in err.details(), "the error names the field")

stale = workspace_pb2.Workspace()
stale.CopyFrom(got)
stale.inference.adapters.add(source=workspace_pb2.DataSource(name="py-adapter", image="example.com/a:1"))
updated = ws.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(workspace=stale)).workspace
check(updated.metadata.generation == 2, "spec update bumps the generation")
expect_code(lambda: ws.UpdateWorkspace(workspace_pb2.UpdateWorkspaceRequest(workspace=stale)),
            grpc.StatusCode.ABORTED, "update with a stale resourceVersion")

sec = config_pb2.Secret(metadata=meta_pb2.ObjectMeta(name="py-secret"), data={"HF_TOKEN": b"hf_x"})
secrets.CreateSecret(config_pb2.WriteSecretRequest(secret=sec))
read = secrets.GetSecret(config_pb2.ObjectKey(name="py-secret"))
check(read.data["HF_TOKEN"] == b"", "secret values are never returned")

deleted = ws.DeleteWorkspace(workspace_pb2.DeleteWorkspaceRequest(name="py-phi-4"))
check(deleted.deleted, "delete without finalizers is immediate")
expect_code(lambda: ws.GetWorkspace(workspace_pb2.GetWorkspaceRequest(name="py-phi-4")),
            grpc.StatusCode.NOT_FOUND, "get after delete")

t.join(30)
kinds = [meta_pb2.EventType.Name(e.type) for e in events]
check(kinds == ["BOOKMARK", "ADDED", "MODIFIED", "DELETED"], "watch saw %s" % kinds)

# Health checking and reflection are served (protos from Debian's grpc-proto, loaded by
# path so that they do not shadow the grpcio package).
health = channel.unary_unary("/grpc.health.v1.Health/Check",
                             request_serializer=lambda _: b"",
                             response_deserializer=lambda b: b)
check(health(None) == b"\x08\x01", "health check answers SERVING")
print("all ok")
