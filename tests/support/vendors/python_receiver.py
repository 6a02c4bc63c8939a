"""A plain Python receiver, as a user would point a webhook at: the standard
library's threading HTTP server with keep-alive (HTTP/1.1) and Nagle's
algorithm left on, so every answer after the first on a connection waits for a
delayed ACK (about 40 ms). Prints its port, then serves until killed.

Usage: python3 python_receiver.py [PORT] [SLEEP_MS]
"""

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    sleep = 0.0

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        if self.sleep:
            time.sleep(self.sleep)
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that went away mid-request (a host stopped at the end of a
        # benchmark run) is not an error of the receiver's.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    Handler.sleep = (int(sys.argv[2]) if len(sys.argv) > 2 else 0) / 1000.0
    server = Server(("127.0.0.1", port), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
