#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# A strict OAuth 2.0 token endpoint for the credential-source tests: client credentials
# (RFC 6749 4.4) and token exchange (RFC 8693), clients authenticated by private_key_jwt
# (RFC 7523) against lanyard's JWKS or by client_secret_basic.  A control port makes it
# fail, stall or answer garbage.  It never logs or prints a secret, an assertion, a subject
# token or an issued token: its log holds their SHA-256 at most.
"""idp.py --listen HOST:PORT --cert PEM --key PEM --ctl HOST:PORT --token-url URL
          --jwks URL_OR_FILE [--client ID[:SECRET_FILE]]... [--subject-audience AUD]
          [--expires-in N] [--log FILE]

Token endpoint (HTTPS, --listen): POST <path of --token-url>, application/x-www-form-urlencoded.
  grant_type=client_credentials: client authentication required, exactly one method:
    private_key_jwt      client_assertion_type=urn:ietf:params:oauth:client-assertion-type:
                         jwt-bearer, client_assertion=JWS (ES256 or EdDSA, key by kid from
                         --jwks; iss == sub == a --client ID; aud = --token-url; exp in the
                         future and at most 300 s away; iat not in the future; jti unique)
    client_secret_basic  Authorization: Basic (only for a --client with a SECRET_FILE)
  grant_type=urn:ietf:params:oauth:grant-type:token-exchange: subject_token (type ...:jwt)
    verified against --jwks (ES256, aud == --subject-audience, exp, sub spiffe://...);
    client authentication optional, but checked when present.
  200 {"access_token": "idp.<random>", "token_type": "Bearer", "expires_in": N [, "scope"]
       [, "issued_token_type"]}; errors as RFC 6749 5.2 ({"error", "error_description"}).
Control (plain HTTP, --ctl, GET): /mode?set=ok|fail|stall|garbage|nojson_token|crlf|huge|slow
  [&status=500] [&delay=S], /expires_in?set=N, /stats, /reset.
  The mode applies to token requests that arrive after the switch; stall holds the request
  until the mode changes (120 s at most), then closes the connection without an answer.
  /stats: {"token_requests", "issued", "rejected" (4xx answers), "by_grant", "by_client"
  (the client_id a request named or proved), "mode", "expires_in"}.
--log appends one JSON line per token request, written before the answer is sent:
  {"grant", "client_id", "auth": "private_key_jwt"|"client_secret_basic"|"none"|...,
   "sub" (exchange: the subject's), "scope", "resource", "audience", "status" (0: no answer),
   "error", "error_description", "jti" (of the assertion), "token_sha256" (hex, of the
   token sent), "expires_in", "mode", "t"}.  Never a secret, an assertion or a token.
Prints "listening" on stdout once both sockets are bound.
"""

import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import secrets
import ssl
import sys
import threading
import time
import urllib.parse
import urllib.request

import jwt

FORM_TYPE = "application/x-www-form-urlencoded"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_CC = "client_credentials"
GRANT_TX = "urn:ietf:params:oauth:grant-type:token-exchange"
TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"
TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
MAX_ASSERTION_LIFETIME = 300  # seconds: a client assertion is short-lived (RFC 7523 3)
CLOCK_SKEW = 60
MAX_BODY = 64 * 1024
HUGE_BODY = 2 * 1024 * 1024
STALL_MAX = 120
MODES = ("ok", "fail", "stall", "garbage", "nojson_token", "crlf", "huge", "slow")
# RFC 8693 2.1 and RFC 8707 2 let these repeat; RFC 6749 3.1/3.2 forbids it for the rest
REPEATABLE = ("resource", "audience")


class OAuthError(Exception):
    """An RFC 6749 5.2 error response: status, error code, description (never a secret)."""

    def __init__(self, status, error, description):
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


def invalid_client(description):
    return OAuthError(401, "invalid_client", description)


def invalid_request(description):
    return OAuthError(400, "invalid_request", description)


def sha256_hex(s):
    return hashlib.sha256(s.encode("utf-8", "surrogateescape")).hexdigest()


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class Keys:
    """Lanyard's JWKS from a URL or a file: loaded lazily, reloaded on an unknown kid."""

    def __init__(self, source):
        self.source = source
        self.lock = threading.Lock()
        self.keys = None  # kid -> PyJWK
        # the JWKS is on loopback: a proxy from the environment must not be used
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _load(self):
        if self.source.startswith(("http://", "https://")):
            with self.opener.open(self.source, timeout=5) as resp:
                data = resp.read(1 << 20)
        else:
            with open(self.source, "rb") as f:
                data = f.read(1 << 20)
        doc = json.loads(data.decode("utf-8"))
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise ValueError("no keys array")
        out = {}
        for k in keys:
            # a key PyJWT cannot use (unknown kty, short EC coordinates) is skipped, as
            # RFC 7517 5 asks: its kid is then unknown
            try:
                jwk = jwt.PyJWK(k)
            except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
                continue
            if isinstance(jwk.key_id, str) and jwk.public_key_use in ("sig", None):
                out[jwk.key_id] = jwk
        return out

    def get(self, kid):
        """The PyJWK with this kid; OAuthError invalid_client when there is none."""
        with self.lock:
            for attempt in (0, 1):
                if self.keys is None or attempt:
                    try:
                        self.keys = self._load()
                    except (OSError, ValueError, jwt.PyJWTError) as e:
                        self.keys = None
                        raise invalid_client(f"cannot load the JWKS ({e.__class__.__name__})")
                if kid in self.keys:
                    return self.keys[kid]
        raise invalid_client("unknown kid")


def key_alg(pyjwk):
    """The one JWS alg a key may sign with here: ES256 for P-256, EdDSA for Ed25519."""
    kty = pyjwk.key_type
    crv = pyjwk._jwk_data.get("crv")  # noqa: SLF001 - PyJWK has no public accessor
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    return None


def verify_jws(keys, token, algs, audience):
    """Signature and aud of a JWS (times are checked by the caller); the claims, or raises
    jwt.PyJWTError / OAuthError.  The key's type fixes the alg: no alg confusion."""
    header = jwt.get_unverified_header(token)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in algs:
        raise jwt.InvalidAlgorithmError(f"alg {alg!r} is not accepted")
    if not isinstance(kid, str) or not kid:
        raise jwt.InvalidTokenError("no kid in the JWS header")
    key = keys.get(kid)
    if key_alg(key) != alg:
        raise jwt.InvalidAlgorithmError(f"alg {alg!r} does not match the key {kid!r}")
    claims = jwt.decode(token, key.key, algorithms=[alg], audience=audience,
                        options={"verify_exp": False, "verify_iat": False,
                                 "verify_nbf": False})
    if not isinstance(claims, dict):
        raise jwt.InvalidTokenError("the payload is not a JSON object")
    return claims


def check_times(claims, max_lifetime):
    """exp required and in the future (at most @max_lifetime away when given); iat and nbf
    optional, not in the future beyond the clock skew.  Returns an error text or None."""
    now = time.time()
    exp = claims.get("exp")
    if not is_number(exp):
        return "exp missing or not a number"
    if exp <= now:
        return "expired"
    if max_lifetime is not None and exp - now > max_lifetime:
        return f"exp is more than {max_lifetime} s away"
    for name in ("iat", "nbf"):
        v = claims.get(name)
        if v is not None and (not is_number(v) or v > now + CLOCK_SKEW):
            return f"{name} is not a number or in the future"
    return None


class State:
    """Everything the handler threads share: configuration, mode, counters, replay cache."""

    def __init__(self, args):
        self.token_url = args.token_url
        self.keys = Keys(args.jwks)
        self.clients = dict(args.client or [])  # id -> secret file or None
        self.subject_audience = args.subject_audience
        self.lock = threading.Condition()
        self.mode = "ok"
        self.fail_status = 500
        self.delay = 0.0
        self.expires_in = args.expires_in
        self.jtis = {}  # (client_id, jti) -> exp
        self.log_file = open(args.log, "a", encoding="utf-8") if args.log else None
        self.reset()

    def reset(self):
        with self.lock:
            self.stats = {"token_requests": 0, "issued": 0, "rejected": 0, "by_grant": {},
                          "by_client": {}}

    def snapshot(self):
        with self.lock:
            return self.mode, self.fail_status, self.delay, self.expires_in

    def set_mode(self, mode, status, delay):
        with self.lock:
            self.mode, self.fail_status, self.delay = mode, status, delay
            self.lock.notify_all()  # releases stalled requests

    def stall(self):
        """Hold the calling request while the mode is stall (STALL_MAX at most)."""
        deadline = time.monotonic() + STALL_MAX
        with self.lock:
            while self.mode == "stall" and time.monotonic() < deadline:
                self.lock.wait(deadline - time.monotonic())

    def use_jti(self, client_id, jti, exp):
        """Record a jti until its exp; False when it was seen before (a replay)."""
        now = time.time()
        with self.lock:
            for k in [k for k, e in self.jtis.items() if e < now]:
                del self.jtis[k]
            if (client_id, jti) in self.jtis:
                return False
            self.jtis[(client_id, jti)] = exp
            return True

    def count(self, rec):
        with self.lock:
            st = self.stats
            st["token_requests"] += 1
            if rec["status"] == 200 and rec.get("issued"):
                st["issued"] += 1
            elif 400 <= rec["status"] < 500:
                st["rejected"] += 1
            g = rec.get("grant") or "none"
            st["by_grant"][g] = st["by_grant"].get(g, 0) + 1
            if rec.get("client_id"):
                c = rec["client_id"]
                st["by_client"][c] = st["by_client"].get(c, 0) + 1

    def log(self, rec):
        self.count(rec)
        if not self.log_file:
            return
        line = {k: v for k, v in rec.items() if k != "issued"}
        line["t"] = time.time()
        with self.lock:
            self.log_file.write(json.dumps(line, sort_keys=True) + "\n")
            self.log_file.flush()


# --- request parsing --------------------------------------------------------------------------


def parse_form(body):
    """The form as {name: value} ({name: [values]} for REPEATABLE), blank values omitted
    (RFC 6749 3.1); OAuthError on a malformed body or a repeated parameter."""
    try:
        text = body.decode("ascii")
        pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                                       encoding="utf-8", errors="strict", max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise invalid_request("malformed application/x-www-form-urlencoded body") from None
    form = {}
    for name, value in pairs:
        if value == "":
            continue
        if name in REPEATABLE:
            form.setdefault(name, []).append(value)
        elif name in form:
            raise invalid_request(f"parameter {name[:40]!r} repeated")
        else:
            form[name] = value
    return form


def check_scope(scope):
    # RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by one space
    for tok in scope.split(" "):
        if not tok or any(c in '"\\' or not 0x21 <= ord(c) <= 0x7E for c in tok):
            raise OAuthError(400, "invalid_scope", "malformed scope")


def check_resources(resources):
    # RFC 8707 2: an absolute URI without a fragment
    for r in resources or []:
        u = urllib.parse.urlsplit(r)
        if not u.scheme or u.fragment or "#" in r:
            raise OAuthError(400, "invalid_target", "resource is not an absolute URI")


def basic_credentials(authz):
    """(client_id, secret) of an Authorization: Basic value (RFC 6749 2.3.1); OAuthError."""
    scheme, _, b64 = authz.strip().partition(" ")
    if scheme.lower() != "basic" or not b64:
        raise invalid_client("Authorization is not Basic")
    try:
        raw = base64.b64decode(b64.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise invalid_client("malformed Basic credentials") from None
    cid, sep, secret = raw.partition(":")
    if not sep:
        raise invalid_client("malformed Basic credentials")
    # each part is form-urlencoded before the base64 (RFC 6749 2.3.1)
    return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)


# --- client authentication --------------------------------------------------------------------


def auth_private_key_jwt(state, form, rec):
    """RFC 7523 2.2 / 3 and OIDC core 9: the client_id the assertion proves."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise invalid_client("unsupported client_assertion_type")
    assertion = form.get("client_assertion")
    if not assertion:
        raise invalid_client("client_assertion missing")
    try:
        claims = verify_jws(state.keys, assertion, ("ES256", "EdDSA"), state.token_url)
    except jwt.PyJWTError as e:
        # PyJWT's messages name the failed check, never the token
        raise invalid_client(f"client assertion: {e.__class__.__name__}: {e}") from None
    iss, sub, jti = claims.get("iss"), claims.get("sub"), claims.get("jti")
    rec["jti"] = jti if isinstance(jti, str) else None
    if not isinstance(iss, str) or iss != sub:
        raise invalid_client("client assertion: iss and sub must be the client_id")
    rec["client_id"] = iss
    if iss not in state.clients:
        raise invalid_client("client assertion: unknown client")
    if form.get("client_id") not in (None, iss):
        raise invalid_client("client_id does not match the assertion")
    why = check_times(claims, MAX_ASSERTION_LIFETIME)
    if why:
        raise invalid_client(f"client assertion: {why}")
    if not isinstance(jti, str) or not jti:
        raise invalid_client("client assertion: jti missing")
    if not state.use_jti(iss, jti, claims["exp"]):
        raise invalid_client("jti replayed")
    return iss


def auth_basic(state, form, authz, rec):
    cid, secret = basic_credentials(authz)
    rec["client_id"] = cid
    path = state.clients.get(cid)
    if path is None:
        raise invalid_client("unknown client or no secret registered")
    if form.get("client_id") not in (None, cid):
        raise invalid_client("client_id does not match the Authorization header")
    try:
        with open(path, "rb") as f:
            expected = f.read().strip()
    except OSError:
        raise OAuthError(500, "server_error", "cannot read the client secret") from None
    if not hmac.compare_digest(expected, secret.encode("utf-8")):
        raise invalid_client("wrong client secret")
    return cid


def authenticate(state, form, headers, rec, required):
    """The authenticated client_id, or None when @required is false and none was tried."""
    if len(headers.get_all("Authorization") or []) > 1:
        raise invalid_request("more than one Authorization header")
    authz = headers.get("Authorization")
    methods = []
    if "client_assertion" in form or "client_assertion_type" in form:
        methods.append("private_key_jwt")
    if authz is not None:
        methods.append("client_secret_basic")
    if "client_secret" in form:
        methods.append("client_secret_post")
    if len(methods) > 1:
        # RFC 6749 2.3: the client MUST NOT use more than one authentication method
        raise invalid_request("more than one client authentication method")
    rec["auth"] = methods[0] if methods else "none"
    if not methods:
        rec["client_id"] = form.get("client_id")
        if required or "client_id" in form:
            raise invalid_client("client authentication required")
        return None
    if methods[0] == "private_key_jwt":
        return auth_private_key_jwt(state, form, rec)
    if methods[0] == "client_secret_basic":
        return auth_basic(state, form, authz, rec)
    rec["client_id"] = form.get("client_id")
    raise invalid_client("client_secret_post is not accepted")


# --- grants -----------------------------------------------------------------------------------


def common_params(form, rec):
    """scope, resource, audience: checked and recorded."""
    rec["scope"] = form.get("scope")
    rec["resource"] = form.get("resource")
    rec["audience"] = form.get("audience")
    if rec["scope"]:
        check_scope(rec["scope"])
    check_resources(rec["resource"])


def grant_client_credentials(state, form, headers, rec):
    common_params(form, rec)
    authenticate(state, form, headers, rec, required=True)
    return {}


def verify_subject(state, form, rec):
    if form.get("actor_token") or form.get("actor_token_type"):
        raise invalid_request("actor_token is not supported")
    if form.get("requested_token_type") not in (None, TYPE_ACCESS):
        raise invalid_request("requested_token_type not supported")
    token = form.get("subject_token")
    if not token:
        raise invalid_request("subject_token missing")
    if form.get("subject_token_type") != TYPE_JWT:
        raise invalid_request("subject_token_type must be " + TYPE_JWT)
    # RFC 8693 2.2.2: an unacceptable subject_token is invalid_request
    try:
        claims = verify_jws(state.keys, token, ("ES256",), state.subject_audience)
    except jwt.PyJWTError as e:
        raise invalid_request(f"subject_token: {e.__class__.__name__}: {e}") from None
    except OAuthError as e:
        raise invalid_request(f"subject_token: {e.description}") from None
    sub = claims.get("sub")
    rec["sub"] = sub if isinstance(sub, str) else None
    why = check_times(claims, None)
    if why:
        raise invalid_request(f"subject_token: {why}")
    if not isinstance(sub, str) or not sub.startswith("spiffe://"):
        raise invalid_request("subject_token: sub is not a SPIFFE ID")


def grant_token_exchange(state, form, headers, rec):
    if not state.subject_audience:
        raise OAuthError(400, "unsupported_grant_type", "token exchange is not enabled")
    common_params(form, rec)
    authenticate(state, form, headers, rec, required=False)
    verify_subject(state, form, rec)
    return {"issued_token_type": TYPE_ACCESS}


GRANTS = {GRANT_CC: grant_client_credentials, GRANT_TX: grant_token_exchange}


def issue(state, form, headers, rec, expires_in):
    """Run the grant; (status, JSON body).  Raises OAuthError."""
    grant = form.get("grant_type")
    if not grant:
        raise invalid_request("grant_type missing")
    handler = GRANTS.get(grant)
    if handler is None:
        raise OAuthError(400, "unsupported_grant_type", "unsupported grant_type")
    extra = handler(state, form, headers, rec)
    token = "idp." + secrets.token_urlsafe(32)
    body = {"access_token": token, "token_type": "Bearer", "expires_in": expires_in}
    if form.get("scope"):
        body["scope"] = form["scope"]
    body.update(extra)
    rec["token_sha256"] = sha256_hex(token)
    rec["expires_in"] = expires_in
    rec["issued"] = True
    return 200, body


# --- HTTP -------------------------------------------------------------------------------------


def json_bytes(obj):
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


def error_reply(e, rec):
    """(status, body, content type, extra headers) of an RFC 6749 5.2 error."""
    extra = ()
    if e.status == 401 and rec.get("auth") == "client_secret_basic":
        # RFC 6749 5.2: a failed Authorization header earns a challenge
        extra = (("WWW-Authenticate", 'Basic realm="lanyard-test-idp"'),)
    body = {"error": e.error, "error_description": e.description}
    return e.status, json_bytes(body), "application/json", extra


def token_reply(status, obj):
    return status, json_bytes(obj), "application/json", ()


def huge_reply(rec, expires_in):
    token = "idp." + secrets.token_urlsafe(32)
    rec["token_sha256"] = sha256_hex(token)
    head = json.dumps({"access_token": token, "token_type": "Bearer",
                       "expires_in": expires_in})[:-1] + ', "padding": "'
    pad = HUGE_BODY - len(head) - len('"}\n')
    return 200, (head + "x" * pad + '"}\n').encode(), "application/json", ()


def misbehave(state, rec, mode, fail_status, expires_in):
    """The reply of the control port's broken modes; None: no reply at all (stall)."""
    rec["status"] = 200
    if mode == "fail":
        rec["status"], rec["error"] = fail_status, "server_error"
        return token_reply(fail_status, {"error": "server_error"})
    if mode == "stall":
        state.stall()
        rec["status"], rec["error"] = 0, "stalled"
        return None
    if mode == "garbage":
        return 200, b"<html><body>token service</body></html>\n", "text/html", ()
    if mode == "nojson_token":
        return token_reply(200, {"token_type": "Bearer", "expires_in": expires_in})
    if mode == "crlf":
        token = "idp.x\r\nX-Evil: 1"
        rec["token_sha256"] = sha256_hex(token)
        return token_reply(200, {"access_token": token, "token_type": "Bearer",
                                 "expires_in": expires_in})
    return huge_reply(rec, expires_in)


class TokenHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    timeout = 30  # idle keep-alive connections

    def version_string(self):
        return "lanyard-test-idp"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass  # the request log is --log, as JSON

    def send_reply(self, status, data, ctype, extra):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        # RFC 6749 5.1: token responses are never cached
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def not_token_endpoint(self):
        if urllib.parse.urlsplit(self.path).path != self.server.token_path:
            self.close_connection = True
            e = OAuthError(404, "invalid_request", "not found")
            self.send_reply(*error_reply(e, {}))
        else:
            e = OAuthError(405, "invalid_request", "use POST")
            status, data, ctype, _ = error_reply(e, {})
            self.send_reply(status, data, ctype, (("Allow", "POST"),))

    do_GET = do_PUT = do_DELETE = do_PATCH = do_HEAD = not_token_endpoint

    def read_body(self):
        if self.headers.get("Transfer-Encoding") is not None:
            raise invalid_request("Transfer-Encoding is not supported; send Content-Length")
        cl = self.headers.get_all("Content-Length") or []
        if len(cl) != 1 or not cl[0].strip().isdigit():
            raise invalid_request("one Content-Length required")
        n = int(cl[0])
        if n > MAX_BODY:
            raise invalid_request("request body too large")
        body = self.rfile.read(n)
        if len(body) != n:
            raise invalid_request("request body truncated")
        return body

    def do_POST(self):
        if urllib.parse.urlsplit(self.path).path != self.server.token_path:
            self.not_token_endpoint()
            return
        state = self.server.state
        mode, fail_status, delay, expires_in = state.snapshot()
        rec = {"grant": None, "client_id": None, "auth": "none", "sub": None, "scope": None,
               "resource": None, "audience": None, "status": 500, "error": None, "jti": None,
               "token_sha256": None, "expires_in": None, "mode": mode}
        try:
            reply = self.token_request(state, rec, mode, fail_status, delay, expires_in)
        except OAuthError as e:
            rec["status"], rec["error"] = e.status, e.error
            rec["error_description"] = e.description
            reply = error_reply(e, rec)
        except OSError:
            rec["status"], rec["error"], reply = 0, "connection", None
        except Exception as e:  # noqa: BLE001 - one bad request must never stop the server
            print(f"idp: request failed: {e.__class__.__name__}", file=sys.stderr, flush=True)
            rec["status"], rec["error"] = 500, "server_error"
            reply = error_reply(OAuthError(500, "server_error", "internal"), rec)
        # logged before the answer: whoever got the answer finds its line in the log
        state.log(rec)
        if reply is None or reply[0] >= 500:
            self.close_connection = True
        if reply is not None:
            self.send_reply(*reply)

    def token_request(self, state, rec, mode, fail_status, delay, expires_in):
        """The reply to a token request (None: none); raises OAuthError."""
        body = self.read_body()
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form = None
        if ctype == FORM_TYPE:
            try:
                form = parse_form(body)
                rec["grant"] = form.get("grant_type")
            except OAuthError:
                if mode in ("ok", "slow"):
                    raise
        if mode not in ("ok", "slow"):
            return misbehave(state, rec, mode, fail_status, expires_in)
        if mode == "slow" and delay > 0:
            time.sleep(delay)
        if ctype != FORM_TYPE:
            raise invalid_request(f"Content-Type must be {FORM_TYPE}")
        status, resp = issue(state, form, self.headers, rec, expires_in)
        rec["status"] = status
        return token_reply(status, resp)


class TokenServer(http.server.ThreadingHTTPServer):
    """HTTPS: the TLS handshake runs in the request's thread, so that a client that never
    finishes it cannot hold up accept()."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of concurrent clients are part of the tests

    def __init__(self, addr, state, ctx, token_path):
        super().__init__(addr, TokenHandler)
        self.state = state
        self.ctx = ctx
        self.token_path = token_path

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            conn = self.ctx.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        print(f"idp: connection error: {e.__class__.__name__}", file=sys.stderr, flush=True)


# --- control port -----------------------------------------------------------------------------


def ctl_mode(state, q):
    mode = q.get("set", "")
    if mode not in MODES:
        raise ValueError("unknown mode")
    status = int(q.get("status", "500"))
    delay = float(q.get("delay", "0"))
    if not 400 <= status <= 599 or not 0 <= delay <= STALL_MAX:
        raise ValueError("status or delay out of range")
    state.set_mode(mode, status, delay)
    return {"mode": mode, "status": status, "delay": delay}


def ctl_expires_in(state, q):
    n = int(q.get("set", ""))
    if not 0 <= n <= 86400:
        raise ValueError("expires_in out of range")
    with state.lock:
        state.expires_in = n
    return {"expires_in": n}


def ctl_stats(state, q):
    with state.lock:
        out = json.loads(json.dumps(state.stats))
        out["mode"] = state.mode
        out["expires_in"] = state.expires_in
    return out


def ctl_reset(state, q):
    state.reset()
    return {"reset": True}


CONTROL = {"/mode": ctl_mode, "/expires_in": ctl_expires_in, "/stats": ctl_stats,
           "/reset": ctl_reset}


class ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002
        pass

    def reply(self, status, obj):
        data = (json.dumps(obj, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        fn = CONTROL.get(u.path)
        if fn is None:
            self.reply(404, {"error": "not found"})
            return
        try:
            q = dict(urllib.parse.parse_qsl(u.query, strict_parsing=bool(u.query)))
            self.reply(200, fn(self.server.state, q))
        except ValueError as e:
            self.reply(400, {"error": str(e)})


class ControlServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, state):
        super().__init__(addr, ControlHandler)
        self.state = state


# --- main -------------------------------------------------------------------------------------


def parse_listen(s):
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"bad address {s!r} (want HOST:PORT)")
    return host.strip("[]"), int(port)


def parse_client(s):
    cid, _, path = s.partition(":")
    if not cid:
        raise argparse.ArgumentTypeError("empty client id")
    if path and not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"client {cid}: no secret file {path}")
    return cid, path or None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, type=parse_listen, help="HOST:PORT (TLS)")
    ap.add_argument("--cert", required=True, help="server certificate chain (PEM)")
    ap.add_argument("--key", required=True, help="server private key (PEM)")
    ap.add_argument("--ctl", required=True, type=parse_listen, help="HOST:PORT (control)")
    ap.add_argument("--token-url", required=True, help="URL clients POST to; assertion aud")
    ap.add_argument("--jwks", required=True, help="JWKS URL or file")
    ap.add_argument("--client", action="append", type=parse_client, help="ID[:SECRET_FILE]")
    ap.add_argument("--subject-audience", help="aud of token exchange subject tokens")
    ap.add_argument("--expires-in", type=int, default=60, help="expires_in of tokens")
    ap.add_argument("--log", help="append one JSON line per token request to this file")
    args = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    state = State(args)
    token_path = urllib.parse.urlsplit(args.token_url).path or "/"
    tokens = TokenServer(args.listen, state, ctx, token_path)
    control = ControlServer(args.ctl, state)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    print("listening", flush=True)
    try:
        tokens.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
