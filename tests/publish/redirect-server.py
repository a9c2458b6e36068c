#!/usr/bin/env python3
"""A fake registry that keeps its blobs elsewhere, for the redirect test.

redirect-server.py REG_PORT STORE_PORT DIR USER PASSWORD LOG

Plain HTTP on 127.0.0.1.  The registry port wants Basic credentials, serves
DIR/manifest.json as /v2/team/app/manifests/1.0 and answers every blob GET
with a 307 to the storage port, as registries with S3 storage do.  To
exercise retries, the first manifest GET gets a 503 and the first blob GET
a 429 with Retry-After: 1.  The
storage port serves DIR/<hex> and logs whether an Authorization header
came with the request (it must not).
"""
import base64
import http.server
import os
import sys
import threading

from quiet_http import QuietHandler

reg_port, store_port, folder, user, password, log_path = sys.argv[1:7]
good = "Basic " + base64.b64encode((user + ":" + password).encode()).decode()
failed_once = set()


def log(line):
    with open(log_path, "a") as f:
        f.write(line + "\n")


class Registry(QuietHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization")
        log("registry %s %s auth=%s" % (self.command, self.path,
                                        "good" if auth == good else "none"))
        if auth != good:
            self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                       [("WWW-Authenticate", 'Basic realm="fake"')])
        elif self.path == "/v2/":
            self.reply(200, b"{}")
        elif self.path == "/v2/team/app/manifests/1.0" and "m" not in failed_once:
            failed_once.add("m")
            self.reply(503, b'{"errors":[{"code":"UNAVAILABLE"}]}')
        elif self.path.startswith("/v2/team/app/blobs/") and "b" not in failed_once:
            failed_once.add("b")
            self.reply(429, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}',
                       [("Retry-After", "1")])
        elif self.path == "/v2/team/app/manifests/1.0":
            with open(os.path.join(folder, "manifest.json"), "rb") as f:
                body = f.read()
            self.reply(200, body, [("Content-Type",
                                    "application/vnd.oci.image.manifest.v1+json")])
        elif self.path.startswith("/v2/team/app/blobs/sha256:"):
            hexd = self.path.rsplit(":", 1)[1]
            self.reply(307, b"", [("Location", "http://127.0.0.1:%s/store/%s?X-Sig=1"
                                   % (store_port, hexd))])
        else:
            self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')

    do_HEAD = do_GET


class Store(QuietHandler):
    def do_GET(self):
        auth = self.headers.get("Authorization")
        log("storage GET %s auth=%s" % (self.path, "present" if auth else "absent"))
        hexd = self.path.split("/")[-1].split("?")[0]
        path = os.path.join(folder, hexd)
        if not os.path.exists(path):
            self.reply(404)
            return
        with open(path, "rb") as f:
            self.reply(200, f.read())


store = http.server.ThreadingHTTPServer(("127.0.0.1", int(store_port)), Store)
threading.Thread(target=store.serve_forever, daemon=True).start()
http.server.ThreadingHTTPServer(("127.0.0.1", int(reg_port)), Registry).serve_forever()
