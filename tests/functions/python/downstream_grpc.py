"""A handler that makes unary gRPC calls with grpcio, for lambda-meter's downstream figures,
to the test's server (downstream_grpc_server.py): the method takes the delay in milliseconds
as its request bytes. No generated code: the method is called by name with raw bytes. With
`"bdp_probe": false` in the event, the channel sends no PING frames of its own (gRPC's
bandwidth-delay probes, `grpc.http2.bdp_probe`)."""

import grpc

METHOD = "/delay.Delay/Wait"


def handler(event, context):
    target = f"{event['host']}:{event['port']}"
    got = 0
    # One channel per invoke: one HTTP/2 connection, every call a stream on it.
    options = [] if event.get("bdp_probe", True) else [("grpc.http2.bdp_probe", 0)]
    with grpc.insecure_channel(target, options=options) as channel:
        wait = channel.unary_unary(METHOD)
        for _ in range(event["calls"]):
            got += len(wait(str(event["ms"]).encode(), timeout=30))
    return {"calls": event["calls"], "bytes": got}
