"""A minimal reproduction for the names of lambda-meter's downstream figures: the host is
looked up with getaddrinfo (IPv4 addresses only), then the address it gave is connected as an
IPv4-mapped IPv6 address (::ffff:a.b.c.d) on an AF_INET6 socket, as the JDK and gRPC's native
resolver connect; one HTTP call to the test's server (`GET /<ms>`) on it."""

import socket


def handler(event, context):
    host, port = event["host"], event["port"]
    addr = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    got = b""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.connect((f"::ffff:{addr}", port))
        request = f"GET /{event['ms']} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        s.sendall(request.encode())
        while chunk := s.recv(65536):
            got += chunk
    return {"connected": f"::ffff:{addr}", "bytes": len(got)}
