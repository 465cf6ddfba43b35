#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Copyright (c) 2026 The lanyard authors
#
# Verify a lanyard JWT the way an upstream would: PyJWT, ES256 only, key by kid
# from a JWKS (file or URL), aud (and iss) checked, every lanyard claim required.
# Prints the verified claims as one JSON line; exit 1 with a message otherwise.
# The token is read from a file or stdin so that it never shows on a command line,
# and it is never printed.
"""verify_jwt.py --jwks FILE_OR_URL --aud AUD [--iss ISS] TOKEN_FILE_OR_-"""

import argparse
import json
import sys

import jwt

REQUIRED = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]


def fail(msg):
    print(f"verify_jwt: {msg}", file=sys.stderr)
    sys.exit(1)


def read_token(src):
    try:
        if src == "-":
            data = sys.stdin.read()
        else:
            with open(src, encoding="ascii") as f:
                data = f.read()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read the token from {src}: {e.__class__.__name__}")
    token = data.strip()
    if token.count(".") != 2:
        fail("input is not a JWS compact serialisation (three dot-separated parts)")
    return token


def signing_key(jwks_src, token):
    """The public key that the token's kid names, from a JWKS URL or file."""
    if jwks_src.startswith(("http://", "https://")):
        return jwt.PyJWKClient(jwks_src, cache_keys=False).get_signing_key_from_jwt(token).key
    with open(jwks_src, encoding="utf-8") as f:
        keyset = jwt.PyJWKSet.from_json(f.read())
    kid = jwt.get_unverified_header(token).get("kid")
    for k in keyset.keys:
        if k.key_id == kid:
            return k.key
    raise jwt.InvalidTokenError(f"no key with kid {kid!r} in {jwks_src}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--jwks", required=True, help="JWKS file or http(s) URL")
    ap.add_argument("--aud", required=True, help="expected audience")
    ap.add_argument("--iss", help="expected issuer (checked when given)")
    ap.add_argument("token", help="file holding the token, or - for stdin")
    args = ap.parse_args()

    token = read_token(args.token)
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "ES256" or header.get("typ") != "JWT":
            fail(f"unexpected JWS header alg={header.get('alg')!r} typ={header.get('typ')!r}")
        claims = jwt.decode(
            token,
            signing_key(args.jwks, token),
            algorithms=["ES256"],
            audience=args.aud,
            issuer=args.iss,
            options={"require": REQUIRED, "verify_iss": args.iss is not None},
        )
    except (jwt.PyJWTError, OSError, ValueError) as e:
        # PyJWT's messages name the failed check, never the token
        fail(f"{e.__class__.__name__}: {e}")
    print(json.dumps(claims, sort_keys=True, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
