#!/usr/bin/env python3
"""A phone_home receiver for try-guest.sh: listens on 127.0.0.1, answers 200 to the first POST and exits.

Usage: listener.py PORT_FILE OUT_FILE [PORT]. Binds 127.0.0.1:PORT (0: any free port), writes the port to PORT_FILE,
then on the first POST writes one JSON line to OUT_FILE: {"time": epoch seconds, "path", "user_agent",
"content_type", "body"}.
"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

port_file, out_file = sys.argv[1], sys.argv[2]
port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
done = False


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global done
        arrived = time.time()
        length = min(int(self.headers.get("Content-Length") or 0), 65536)
        body = self.rfile.read(length).decode("utf-8", "replace")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")
        with open(out_file, "w") as f:
            json.dump({"time": arrived, "path": self.path, "user_agent": self.headers.get("User-Agent"),
                       "content_type": self.headers.get("Content-Type"), "body": body}, f)
            f.write("\n")
        done = True

    def log_message(self, *args):
        pass


server = HTTPServer(("127.0.0.1", port), Handler)
with open(port_file, "w") as f:
    f.write(f"{server.server_address[1]}\n")
while not done:
    server.handle_request()
