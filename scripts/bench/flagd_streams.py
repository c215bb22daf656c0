"""Holds N flagd EventStream calls open against a relay (gRPC v2, several channels), waits until
each has received provider_ready, prints "open N", then keeps them open until stdin closes."""

import sys
import threading

import grpc
from openfeature.schemas.protobuf.flagd.evaluation.v2 import evaluation_pb2, evaluation_pb2_grpc

target, count = sys.argv[1], int(sys.argv[2])
PER_CHANNEL = 100  # under the server's concurrent-stream limit per connection
ready = threading.Semaphore(0)
calls = []
# A local subchannel pool per channel: else grpc shares one connection among them all.
channels = [
    grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
    for _ in range((count + PER_CHANNEL - 1) // PER_CHANNEL)
]


def hold(call):
    try:
        for msg in call:
            if msg.type == "provider_ready":
                ready.release()
    except grpc.RpcError:
        pass


for i in range(count):
    stub = evaluation_pb2_grpc.ServiceStub(channels[i // PER_CHANNEL])
    call = stub.EventStream(evaluation_pb2.EventStreamRequest())
    calls.append(call)
    threading.Thread(target=hold, args=(call,), daemon=True).start()
for _ in range(count):
    if not ready.acquire(timeout=60):
        sys.exit("streams did not all open")
print(f"open {count}", flush=True)
sys.stdin.read()
for c in calls:
    c.cancel()
