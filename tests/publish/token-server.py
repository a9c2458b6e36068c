#!/usr/bin/env python3
"""A minimal Docker token server for the Bearer tests (docs/spec/auth/token.md).

token-server.py PORT CERT KEY SIGNKEY SIGNCERT USER PASSWORD LOG

Serves GET /token?service=...&scope=... over TLS on 127.0.0.1:PORT.  With the
right Basic credentials it grants every action asked for; otherwise 401.
Tokens are ES256 JWTs signed with SIGNKEY through the openssl command, with
SIGNCERT in the x5c header, which docker-registry checks against its
rootcertbundle.  Every request (path and whether credentials came) is
appended to LOG, never the credentials themselves.
"""
import base64
import http.server
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.parse

from quiet_http import QuietHandler

port, cert, key, sign_key, sign_cert, user, password, log_path = sys.argv[1:9]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_raw(der):
    """ECDSA DER SEQUENCE { INTEGER r, INTEGER s } -> r || s, 32 bytes each."""
    pos = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[pos] == 0x02
        n = der[pos + 1]
        value = int.from_bytes(der[pos + 2:pos + 2 + n], "big")
        out += value.to_bytes(32, "big")
        pos += 2 + n
    return out


def make_token(service, subject, access):
    with open(sign_cert) as f:
        pem = f.read()
    der_cert = base64.b64decode("".join(
        line for line in pem.splitlines() if not line.startswith("-----")))
    header = {"alg": "ES256", "typ": "JWT",
              "x5c": [base64.b64encode(der_cert).decode()]}
    now = int(time.time())
    claims = {"iss": "vab-test-issuer", "sub": subject, "aud": service,
              "exp": now + 300, "nbf": now - 10, "iat": now,
              "jti": b64url(os.urandom(12)), "access": access}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode())).encode()
    der = subprocess.run(["openssl", "dgst", "-sha256", "-sign", sign_key],
                         input=signing_input, capture_output=True,
                         check=True).stdout
    return signing_input.decode() + "." + b64url(der_to_raw(der))


class Handler(QuietHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization", "")
        good = "Basic " + base64.b64encode(
            (user + ":" + password).encode()).decode()
        with open(log_path, "a") as log:
            log.write("GET %s scope=%s credentials=%s\n" % (
                url.path, " ".join(query.get("scope", [])),
                "good" if auth == good else ("bad" if auth else "none")))
        if url.path != "/token" or auth != good:
            self.send_response(401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED"}]}')
            return
        access = []
        for scope in query.get("scope", []):
            for item in scope.split(" "):
                kind, _, rest = item.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name,
                               "actions": actions.split(",")})
        token = make_token(query.get("service", [""])[0], user, access)
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


server = http.server.HTTPServer(("127.0.0.1", int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
