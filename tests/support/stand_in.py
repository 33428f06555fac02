"""PayHero stand-ins for tests: a request handler base that answers JSON quietly, and a server to run one."""
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """Subclasses define do_GET / do_POST and answer with send_json; nothing is logged."""

    def send_json(self, status, data):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def http_server(handler):
    """A threaded HTTP server of handler on a free local port (serve it, then shutdown and server_close), and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    return server, f"http://127.0.0.1:{server.server_address[1]}"
