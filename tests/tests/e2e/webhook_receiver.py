#!/usr/bin/env python3
"""A webhook receiver for the end-to-end tests (tests/tests/e2e/webhooks.rs).

Every POST is verified with the Standard Webhooks reference library for Python
(`standardwebhooks`, an implementation independent of the host's), once per secret given,
and logged as one JSON line: path, webhook-id, which secrets verified it, the status it
was answered with, the body. How it answers, by path:

  /hook      the status set with POST /control {"status": N} (200 at start)
  /gone      410 Gone
  /redirect  307 to /redirected (which would answer 200, were it ever reached)
  /slow      200 after 3 s (logged as `answered: "late"` when the request arrives)

Usage: webhook_receiver.py <port> <log file> <whsec_…>[,<whsec_…>]
Prints `listening <port>` once it accepts connections.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

PORT = int(sys.argv[1])
LOG = open(sys.argv[2], "a", encoding="utf-8")
VERIFIERS = [Webhook(s) for s in sys.argv[3].split(",")]
LOCK = threading.Lock()
STATE = {"status": 200}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, location=None):
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/control":
            with LOCK:
                STATE.update(json.loads(body))
            self.answer(204)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified_by = []
        errors = []
        for i, verifier in enumerate(VERIFIERS):
            try:
                verifier.verify(body, headers)
                verified_by.append(i)
            except Exception as e:  # the library's WebhookVerificationError, or bad JSON
                errors.append(f"{i}: {e}")
        if self.path == "/gone":
            status, location = 410, None
        elif self.path == "/redirect":
            status, location = 307, "/redirected"
        elif self.path == "/slow":
            status, location = "late", None
        else:
            with LOCK:
                status, location = STATE["status"], None
        record = {
            "path": self.path,
            "id": headers.get("webhook-id"),
            "timestamp": headers.get("webhook-timestamp"),
            "signature": headers.get("webhook-signature"),
            "content_type": headers.get("content-type"),
            "verified_by": verified_by,
            "errors": errors,
            "answered": status,
            "body": body.decode("utf-8", "replace"),
        }
        with LOCK:
            LOG.write(json.dumps(record) + "\n")
            LOG.flush()
        if status == "late":
            time.sleep(3)
            status = 200
        self.answer(status, location)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
