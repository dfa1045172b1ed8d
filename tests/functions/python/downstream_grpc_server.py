"""A grpcio server for the downstream tests: `/delay.Delay/Wait` answers after the number of
milliseconds its request bytes give, with 1000 bytes. It listens on a loopback port of both
address families (IPv4, and IPv6 where the machine has it), prints the port on its first line,
then one line per call, on receipt: `call <peer>` (the peer names the client's connection).
It ends when its standard input closes. With `--no-bdp-probe`, it sends no PING frames of its
own (gRPC's bandwidth-delay probes, `grpc.http2.bdp_probe`)."""

import sys
import time
from concurrent import futures

import grpc

BODY = b"x" * 1000


def wait(request, context):
    print(f"call {context.peer()}", flush=True)
    time.sleep(int(request.decode()) / 1000)
    return BODY


def main():
    options = [("grpc.http2.bdp_probe", 0)] if "--no-bdp-probe" in sys.argv[1:] else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "delay.Delay", {"Wait": grpc.unary_unary_rpc_method_handler(wait)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    try:
        server.add_insecure_port(f"[::1]:{port}")
    except RuntimeError:
        pass  # no IPv6 loopback here
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(None)


if __name__ == "__main__":
    main()
