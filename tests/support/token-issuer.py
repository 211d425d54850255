#!/usr/bin/env python3
"""A token issuer for Debian's docker-registry (CNCF distribution, `auth: token`), the way
Harbor's /service/token works, for the black-box tests. Test fixture only, loopback only.

GET /service/token?service=S&scope=repository:PATH:ACTIONS answers {"token", "access_token",
"expires_in"} with an RS256 JWT whose header carries the signing certificate (x5c), which the
registry verifies against its rootcertbundle. Rules, as a Harbor with one private project:
  admin:adminpw   push and pull everywhere (the tests push images with skopeo)
  robot$k3s:...   pull on every project (password from --robot-password-file)
  anonymous       pull on every project but private-proxy
A wrong password is 401 UNAUTHORIZED; a scope not granted gives a token without that access
(the registry then answers 401 again), as Harbor does. Every request is logged to --log with
the user name, never the password.
"""
import argparse
import base64
import http.server
import json
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--issuer", required=True)
    ap.add_argument("--robot-password-file", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    with open(args.key, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(args.cert, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    with open(args.robot_password_file) as f:
        robot_password = f.read().rstrip("\n")
    users = {"admin": "adminpw", "robot$k3s": robot_password}

    def sign(claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [x5c]}
        signing_input = (b64url(json.dumps(header).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return signing_input.decode() + "." + b64url(signature)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):  # the tests read --log instead
            pass

        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            user = None
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                name, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if users.get(name) != password:
                    with open(args.log, "a") as log:
                        log.write("denied user=%s\n" % name)
                    return self.answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                         "message": "invalid credentials"}]})
                user = name
            access = []
            for scope in query.get("scope", []):
                kind, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                wanted = actions.split(",")
                if user == "admin":
                    granted = wanted
                elif user is not None or not name.startswith("private-proxy/"):
                    granted = [a for a in wanted if a == "pull"]
                else:
                    granted = []
                access.append({"type": kind, "name": name, "actions": granted})
            with open(args.log, "a") as log:
                log.write("token user=%s service=%s scope=%s access=%s\n" % (
                    user or "anonymous", ",".join(query.get("service", [])),
                    " ".join(query.get("scope", [])), json.dumps(access)))
            now = int(time.time())
            token = sign({"iss": args.issuer, "sub": user or "", "aud": query.get("service", [""])[0],
                          "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()),
                          "access": access})
            self.answer(200, {"token": token, "access_token": token, "expires_in": 300})

    http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
