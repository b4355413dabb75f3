"""A threaded HTTP server on 127.0.0.1 for the test doubles: start, stop, URL, and one
``handle(handler)`` method per double that answers every request."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops the SYNs of a burst of concurrent clients
    # (a batch of 16 threads), which then wait the kernel's 1 s SYN retry: a delay no cloud
    # endpoint has. Real endpoints accept the burst.
    request_queue_size = 128


class LoopbackServer(object):
    """Subclasses implement ``handle(self, handler)``; the handler is a BaseHTTPRequestHandler."""

    name = 'double'

    def __init__(self, host='127.0.0.1'):
        self._server = _Server((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = None
        self._scheme = 'http'

    @property
    def url(self):
        host, port = self._server.server_address[:2]
        return '%s://%s:%d' % (self._scheme, host, port)

    @property
    def port(self):
        return self._server.server_address[1]

    def serve_tls(self, certfile, keyfile):
        """Answer over TLS with this certificate from now on (call before start); ``url`` then says https."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._scheme = 'https'
        return self

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def handle(self, handler):
        raise NotImplementedError

    @staticmethod
    def reply(handler, status, data, content_type):
        handler.send_response(status)
        handler.send_header('Content-Type', content_type)
        handler.send_header('Content-Length', str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _handler_class(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                double.handle(self)

            do_POST = do_PUT = do_GET

        return Handler
