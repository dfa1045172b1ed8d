"""A TLS HTTP/1.1 server for lambda-meter's downstream tests: `GET /<ms>` is answered after
`ms` milliseconds with 1000 bytes, on a kept-alive connection. Usage: tls_server.py CERT KEY;
prints its port, then a line per request."""

import http.server
import socket
import socketserver
import ssl
import sys
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(int(self.path.strip("/") or 0) / 1000)
        body = b"x" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print("request", flush=True)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def get_request(self):
        # Each connection without Nagle's delay from its handshake on, as servers of HTTP
        # APIs run (else a second session ticket or a body waits for the client's delayed
        # ACK), then wrapped in TLS.
        conn, addr = self.socket.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return context.wrap_socket(conn, server_side=True), addr


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
