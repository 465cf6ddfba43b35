#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# An upstream that does what a real API does with lanyard's JWT: verify the bearer token
# against the issuer's JWKS (PyJWT, ES256, aud, iss, exp) and answer 200 or 401.  It reports
# the verified claims, the token's length and a sha256 fingerprint - never the token.
"""jwt_upstream.py --listen HOST:PORT --jwks URL --audience AUD [--issuer ISS] [--log FILE]

Every request is answered with JSON:
  200 {"verified": true, "sub", "aud", "exp", "iat", "jti", "token_sha256": "sha256:<16 hex>",
       "token_len": N, "headers_received": [...]}
  401 {"verified": false, "reason": "...", "headers_received": [...]}
headers_received lists every header the request carried: "Name: value", or the name alone
for a header that may hold a credential.  --log appends the same JSON, one line per request.
Prints "listening" on stdout once the socket is bound.
"""

import argparse
import hashlib
import http.server
import json
import socket
import sys
import threading

import jwt

# Headers whose values are never echoed or logged: they may carry a credential.
CREDENTIAL_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
}
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "exp", "jti"]


def fingerprint(token):
    """sha256: + the first 16 hex digits of SHA-256(token), as lanyard's audit log has it."""
    return "sha256:" + hashlib.sha256(token.encode("ascii", "replace")).hexdigest()[:16]


def headers_received(headers):
    out = []
    for name, value in headers.items():
        lname = name.lower()
        if lname in CREDENTIAL_HEADERS or "token" in lname or "secret" in lname:
            out.append(name)
        else:
            out.append(f"{name}: {value}")
    return out


class Verifier:
    """Verifies bearer tokens; the JWKS client is shared by all handler threads."""

    def __init__(self, jwks_url, audience, issuer):
        self.jwks = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=60)
        self.audience = audience
        self.issuer = issuer
        self.lock = threading.Lock()

    def verify(self, authz):
        """Return (status, body) for the Authorization header value (or None)."""
        if authz is None:
            return 401, {"verified": False, "reason": "no Authorization header"}
        scheme, _, token = authz.partition(" ")
        token = token.strip()
        # RFC 6750 section 2.1: the scheme is case-insensitive, b64token follows one space
        if scheme.lower() != "bearer" or not token:
            return 401, {"verified": False, "reason": "Authorization is not a Bearer token"}
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != "ES256":
                raise jwt.InvalidAlgorithmError(f"alg {header.get('alg')!r} is not ES256")
            with self.lock:  # PyJWKClient's cache is not documented as thread-safe
                key = self.jwks.get_signing_key_from_jwt(token).key
            claims = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_iss": self.issuer is not None},
            )
        except (jwt.PyJWTError, ValueError, OSError) as e:
            # PyJWT's messages name the failed check, never the token
            return 401, {"verified": False, "reason": f"{e.__class__.__name__}: {e}",
                         "token_sha256": fingerprint(token), "token_len": len(token)}
        body = {"verified": True}
        for k in ("sub", "aud", "exp", "iat", "jti"):
            body[k] = claims.get(k)
        body["token_sha256"] = fingerprint(token)
        body["token_len"] = len(token)
        return 200, body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length

    def version_string(self):
        return "jwt-upstream"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the request log is --log, as JSON; stderr stays quiet

    def answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 0:
            self.rfile.read(length)
        status, body = self.server.verifier.verify(self.headers.get("Authorization"))
        body["method"] = self.command
        body["path"] = self.path
        body["headers_received"] = headers_received(self.headers)
        data = (json.dumps(body, sort_keys=True) + "\n").encode()
        self.server.log(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = answer


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, verifier, log_path):
        super().__init__(addr, Handler)
        self.verifier = verifier
        self.log_lock = threading.Lock()
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def log(self, body):
        if not self.log_file:
            return
        with self.log_lock:
            self.log_file.write(json.dumps(body, sort_keys=True) + "\n")
            self.log_file.flush()


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"bad --listen {s!r} (want HOST:PORT)")
    return host.strip("[]"), int(port)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, type=parse_listen, help="HOST:PORT")
    ap.add_argument("--jwks", required=True, help="JWKS URL of the issuer")
    ap.add_argument("--audience", required=True, help="expected aud")
    ap.add_argument("--issuer", help="expected iss (checked when given)")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    args = ap.parse_args()

    if ":" in args.listen[0]:
        Server.address_family = socket.AF_INET6
    server = Server(args.listen, Verifier(args.jwks, args.audience, args.issuer), args.log)
    print("listening", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
