#!/usr/bin/env python3
"""A patchgate.v1 client that is not ours: Python grpcio with stubs generated
from operator/proto at test time. Prints one JSON line per result; on an RPC
error prints {"code": "<StatusCode name>", "details": ...} and exits 3.

Usage: grpc_client.py ADDR CA_PEM_FILE TOKEN|- METHOD ARGS...
  get NS NAME | watch NS NAME | changerecord NS NAME | revisions NS KIND NAME
  report ENV_NS PATCH TEST
TOKEN '-' sends no authorization metadata.
"""
import json
import sys

import grpc
from google.protobuf import json_format

import patchgate.v1.patchgate_pb2 as pb
import patchgate.v1.patchgate_pb2_grpc as pbg


def main():
    addr, ca_file, token, method, *args = sys.argv[1:]
    with open(ca_file, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(addr, creds)
    stub = pbg.PatchgateStub(channel)
    md = [] if token == "-" else [("authorization", "Bearer " + token)]
    out = lambda m: print(json.dumps(json_format.MessageToDict(m)), flush=True)
    try:
        if method == "get":
            out(stub.GetPatch(pb.GetPatchRequest(namespace=args[0], name=args[1]), metadata=md, timeout=30))
        elif method == "changerecord":
            out(stub.GetChangeRecord(pb.GetPatchRequest(namespace=args[0], name=args[1]), metadata=md, timeout=30))
        elif method == "revisions":
            out(stub.ListRevisions(pb.ListRevisionsRequest(namespace=args[0], kind=args[1], name=args[2]),
                                   metadata=md, timeout=30))
        elif method == "watch":
            for ev in stub.WatchPatch(pb.WatchPatchRequest(namespace=args[0], name=args[1]), metadata=md,
                                      timeout=300):
                print(json.dumps({"type": pb.PatchEvent.Type.Name(ev.type), "phase": ev.patch.phase}), flush=True)
            print(json.dumps({"end": "OK"}), flush=True)
        elif method == "report":
            req = pb.ReportTestResultsRequest(namespace=args[0], patch=args[1], test=args[2])
            s = req.suites.add(name="api")
            s.cases.add(name="GET /version", passed=True, duration_seconds=0.25, output="200 OK")
            s.cases.add(name="POST /pay", passed=False, duration_seconds=1.5, output="500")
            out(stub.ReportTestResults(req, metadata=md, timeout=30))
        else:
            sys.exit("unknown method " + method)
    except grpc.RpcError as e:
        print(json.dumps({"code": e.code().name, "details": e.details()}), flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
