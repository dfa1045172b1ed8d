"""Handlers that call an HTTP server (the test's, which answers `/<ms>` after that many
milliseconds) through real Python clients, for lambda-meter's downstream figures."""

import http.client
import os
import urllib.request

# A connection made at init, outside the handler (as a database client usually is), and
# used once there: with DS_PORT set.
KEPT = None
if os.environ.get("DS_PORT"):
    KEPT = http.client.HTTPConnection("localhost", int(os.environ["DS_PORT"]), timeout=30)
    KEPT.request("GET", "/0")
    KEPT.getresponse().read()


def handler(event, context):
    # One server, or several ("ports"), each called the same way.
    got = sum(call(event, port) for port in event.get("ports") or [event["port"]])
    return {"client": event["client"], "bytes": got}


def call(event, port):
    host, ms, n, client = event["host"], event["ms"], event["calls"], event["client"]
    got = 0
    if client == "http.client":
        # One keep-alive connection for every call.
        c = http.client.HTTPConnection(host, port, timeout=30)
        for _ in range(n):
            c.request("GET", f"/{ms}")
            got += len(c.getresponse().read())
        c.close()
    elif client == "kept":
        for _ in range(n):
            KEPT.request("GET", f"/{ms}")
            got += len(KEPT.getresponse().read())
    elif client == "slow":
        # A quick call, then one the server answers after `ms`: past the function's timeout.
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.request("GET", "/0")
        got += len(c.getresponse().read())
        c.request("GET", f"/{ms}")
        got += len(c.getresponse().read())
    elif client == "https":
        # One TLS connection (its handshake, then the calls), trusting the test's certificate.
        import ssl

        context = ssl.create_default_context(cafile=os.environ["DS_CA"])
        c = http.client.HTTPSConnection(host, port, timeout=30, context=context)
        for _ in range(n):
            c.request("GET", f"/{ms}")
            got += len(c.getresponse().read())
        c.close()
    elif client == "urllib":
        # A connection (and a lookup) per call.
        for _ in range(n):
            with urllib.request.urlopen(f"http://{host}:{port}/{ms}", timeout=30) as r:
                got += len(r.read())
    elif client == "curl":
        # A child process per call: each curl hands its calls to the runtime at its exit.
        import subprocess

        for _ in range(n):
            out = subprocess.run(
                ["curl", "-sS", "-f", f"http://{host}:{port}/{ms}"],
                check=True,
                capture_output=True,
            )
            got += len(out.stdout)
    elif client == "requests":
        import requests

        with requests.Session() as s:
            for _ in range(n):
                got += len(s.get(f"http://{host}:{port}/{ms}", timeout=30).content)
    else:
        raise ValueError(client)
    return got
