# Copyright (c) oomguard.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian's headless Chromium driven over the DevTools protocol on a pipe.

No port is opened for DevTools (``--remote-debugging-pipe``: commands on fd 3,
replies on fd 4, each message JSON ended by a NUL byte). Every network request
the browser would make goes to a loopback proxy that only counts connections
and closes them, so a test can assert that a page fetched nothing.

    with Chromium() as browser:
        page = browser.open_page("file:///tmp/report.html")
        page.evaluate("document.title")
        browser.proxy_connections     # connections the page tried to make
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The browser's own services (component updater, sign-in) are pointed at this
# name, so a connection to it is the browser talking, never the page.
SERVICE_HOST = "chromium-service.invalid"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps", "--disable-extensions",
    "--no-default-browser-check", "--mute-audio", "--no-pings", "--disable-domain-reliability", "--disable-breakpad",
    "--disable-client-side-phishing-detection", "--disable-component-extensions-with-background-pages",
    "--disable-features=MediaRouter,DialMediaRouteProvider,OptimizationHints,Translate,NetworkTimeServiceQuerying,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--component-updater=url-source=http://%s/update" % SERVICE_HOST,
    # origins only: a URL with a path is ignored and the real service is used
    "--gaia-url=http://%s" % SERVICE_HOST, "--lso-url=http://%s" % SERVICE_HOST,
    "--google-base-url=http://%s" % SERVICE_HOST, "--google-apis-url=http://%s" % SERVICE_HOST,
)


class ChromiumError(Exception):
    pass


class CountingProxy:
    """A loopback listener that accepts, records and closes every connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            ready = select.select([self.sock], [], [], 0.1)[0]
            if not ready:
                continue
            try:
                conn = self.sock.accept()[0]
            except OSError:
                return
            threading.Thread(target=self._record, args=(conn,), daemon=True).start()

    def _record(self, conn):
        # A request line arrives at once; on a loaded machine the browser's own service
        # requests can take longer than a fraction of a second, so wait for it.
        conn.settimeout(5)
        try:
            first = conn.recv(200)
        except OSError:
            first = b""
        finally:
            conn.close()
        self.connections.append(first.split(b"\r\n", 1)[0].decode("latin-1"))

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Page:
    def __init__(self, browser, session_id):
        self.browser = browser
        self.session_id = session_id

    def send(self, method, **params):
        return self.browser.send(method, session_id=self.session_id, **params)

    def evaluate(self, expression):
        reply = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise ChromiumError("script failed: %s" % reply["exceptionDetails"])
        return reply["result"].get("value")

    def click(self, x, y):
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def screenshot(self, path, width=1400):
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(data))
        return path

    def events(self, method):
        return [e["params"] for e in self.browser.events if e.get("method") == method and e.get("sessionId") == self.session_id]


class Chromium:
    def __init__(self, timeout=30):
        self.timeout = timeout
        self.proc = None
        self.proxy = None
        self.profile = None
        self.events = []
        self._next_id = 0
        self._buffer = b""
        self._to_browser = self._from_browser = None

    def __enter__(self):
        self.profile = tempfile.mkdtemp(prefix="oomguard-chromium-")
        self.proxy = CountingProxy()
        # Move the child's ends above fd 4 first, so the dup2 calls below cannot clobber each other.
        cmd_read, cmd_write = os.pipe()
        res_read, res_write = os.pipe()
        cmd_read, res_write = [self._high_fd(fd) for fd in (cmd_read, res_write)]

        def wire_pipes():  # runs in the child: DevTools reads fd 3 and writes fd 4
            os.dup2(cmd_read, 3)
            os.dup2(res_write, 4)

        args = [CHROMIUM] + list(FLAGS) + [
            "--user-data-dir=%s" % self.profile, "--remote-debugging-pipe",
            "--proxy-server=http://127.0.0.1:%d" % self.proxy.port, "--proxy-bypass-list=<-loopback>",
            "--window-size=1400,900", "about:blank"]
        try:
            self.proc = subprocess.Popen(args, preexec_fn=wire_pipes, close_fds=False, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            os.close(cmd_read)
            os.close(res_write)
        self._to_browser, self._from_browser = cmd_write, res_read
        return self

    def __exit__(self, *exc):
        self.close()

    @staticmethod
    def _high_fd(fd):
        high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(fd)
        return high

    @property
    def proxy_connections(self):
        """Requests made through the proxy, apart from the browser's own services. A connection
        that sent no request line within 5 s (a speculative preconnect) requested nothing."""
        return [line for line in self.proxy.connections if line and SERVICE_HOST not in line]

    def close(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.send("Browser.close")
                except (ChromiumError, OSError):
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            self.proc = None
        for fd in (self._to_browser, self._from_browser):
            if fd is not None:
                os.close(fd)
        self._to_browser = self._from_browser = None
        if self.proxy is not None:
            self.proxy.close()
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline):
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChromiumError("no answer from Chromium within %ss" % self.timeout)
            ready = select.select([self._from_browser], [], [], left)[0]
            if ready:
                chunk = os.read(self._from_browser, 65536)
                if not chunk:
                    raise ChromiumError("Chromium closed the DevTools pipe (exit code %s)" % self.proc.poll())
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw.decode("utf-8"))

    def send(self, method, session_id=None, **params):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session_id:
            message["sessionId"] = session_id
        os.write(self._to_browser, json.dumps(message).encode("utf-8") + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ChromiumError("%s failed: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method, session_id, start=0):
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events[start:]:
                if event.get("method") == method and event.get("sessionId") == session_id:
                    return event["params"]
            self.events.append(self._read_message(deadline))

    def open_page(self, url):
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Network", "Runtime", "Log"):
            page.send(domain + ".enable")
        page.send("Emulation.setDeviceMetricsOverride", width=1400, height=900, deviceScaleFactor=1, mobile=False)
        mark = len(self.events)
        page.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", session, start=mark)
        return page
