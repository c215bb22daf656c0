#!/usr/bin/env python3
"""An HTTP sink on loopback for scripts/bench-tracing.sh: answers every POST 200 (an OTLP/HTTP
collector's success, a webhook receiver's) and logs `<unix time> <path> <bytes>` per request.

    sink.py PORT LOG
"""
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        self.rfile.read(n)
        with open(sys.argv[2], "a") as log:
            log.write(f"{time.time()} {self.path} {n}\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
