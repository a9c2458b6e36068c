#!/usr/bin/env python3
"""A misbehaving registry, for the limit, size and credential tests.

fake-registry.py MODE PORT OTHER_PORT DIR LOG

Plain HTTP on 127.0.0.1:PORT.  It serves DIR/manifest.json as
/v2/team/app/manifests/1.0 and each blob as DIR/<hex>, and misbehaves as
MODE says:

  trickle          blob bodies come at 2 bytes/s
  silence          the manifest's headers promise 10 GB, then nothing
  oversize         a blob body runs 1 MiB past its size (no Content-Length)
  oversize-length  a blob's Content-Length is larger than its size
  echo             Basic auth (user vab, password from DIR/password); every
                   manifest GET gets an error that echoes the credentials
                   back (JSON for 1.0, text with escapes for 2.0), with a
                   Warning header that echoes them too
  realm            Bearer auth; the token realm is OTHER_PORT, another
                   origin, which logs whether an Authorization header came
  realm-same       Bearer auth with the realm on PORT itself (same origin)
  mute             accepts connections and never says a word (not even a
                   TLS handshake)

Each request is logged to LOG as "PORT METHOD PATH auth=present|absent".
The server exits by itself after 90 seconds.
"""
import base64
import http.server
import os
import socket
import sys
import threading
import time

from quiet_http import QuietHandler

mode, port, other_port, folder, log_path = sys.argv[1:6]
port = int(port)
other_port = int(other_port)
password = ""
if os.path.exists(os.path.join(folder, "password")):
    with open(os.path.join(folder, "password")) as f:
        password = f.read().strip()
basic_good = "Basic " + base64.b64encode(("vab:" + password).encode()).decode()
TOKEN = "tok-8c1f0e2d9b7a"

threading.Timer(90, lambda: os._exit(0)).start()


def log(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")


def read(name):
    with open(os.path.join(folder, name), "rb") as f:
        return f.read()


class Handler(QuietHandler):
    def token_endpoint(self):
        # Anonymous or not, the token server hands out the same token: the
        # test only looks at what it was sent.
        self.reply(200, ('{"token":"%s","expires_in":300}' % TOKEN).encode())

    def authorized(self):
        auth = self.headers.get("Authorization")
        if mode == "echo":
            if auth == basic_good:
                return True
            self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                       [("WWW-Authenticate", 'Basic realm="fake"')])
            return False
        if mode in ("realm", "realm-same"):
            if auth == "Bearer " + TOKEN:
                return True
            realm_port = other_port if mode == "realm" else port
            self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                       [("WWW-Authenticate",
                         'Bearer realm="http://127.0.0.1:%d/token",'
                         'service="fake",scope="repository:team/app:pull"'
                         % realm_port)])
            return False
        return True

    def do_GET(self):
        auth = self.headers.get("Authorization")
        log("%d %s %s auth=%s" % (self.server.server_port, self.command,
                                  self.path, "present" if auth else "absent"))
        if self.path.startswith("/token"):
            return self.token_endpoint()
        if not self.authorized():
            return
        if self.path == "/v2/":
            return self.reply(200, b"{}")
        if self.path.startswith("/v2/team/app/manifests/"):
            return self.manifest(self.path.rsplit("/", 1)[1])
        if self.path.startswith("/v2/team/app/blobs/sha256:"):
            return self.blob(read(self.path.rsplit(":", 1)[1]))
        self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')

    do_HEAD = do_GET

    def manifest(self, tag):
        if mode == "echo":
            auth = self.headers.get("Authorization", "")
            pair = "vab:" + password
            echo = "you sent %s, that is %s, password %s" % (auth, pair, password)
            warning = ("Warning", '299 - "header was %s"' % auth)
            if tag == "1.0":
                body = ('{"errors":[{"code":"DENIED","message":"%s"}]}'
                        % echo).encode()
            else:
                body = ("\x1b[31mdenied\x1b[0m \x07%s\r\nsecond line" % echo).encode()
            return self.reply(403, body, [warning])
        if mode == "silence":
            self.send_response(200)
            self.send_header("Content-Type",
                             "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", "10000000000")
            self.end_headers()
            self.wfile.flush()
            time.sleep(60)
            return
        self.reply(200, read("manifest.json"),
                   [("Content-Type", "application/vnd.oci.image.manifest.v1+json")])

    def blob(self, body):
        status = 200
        wanted = self.headers.get("Range", "")
        if wanted.startswith("bytes=") and wanted.endswith("-"):
            status = 206
            body = body[int(wanted[6:-1]):]
        if mode == "trickle":
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for i in range(min(len(body), 120)):
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
                time.sleep(0.5)
            return
        if mode == "oversize":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body + b"\0" * (1 << 20))
            return
        if mode == "oversize-length":
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + 1000))
            self.end_headers()
            self.wfile.write(body + b"\0" * 1000)
            return
        self.reply(200, body)


if mode == "mute":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(16)
    held = []
    while True:
        conn, _ = listener.accept()
        log("%d connection" % port)
        held.append(conn)

servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)]
if mode == "realm":
    servers.append(http.server.ThreadingHTTPServer(("127.0.0.1", other_port),
                                                   Handler))
for s in servers:
    s.daemon_threads = True
    threading.Thread(target=s.serve_forever, daemon=True).start()
while True:
    time.sleep(1)
