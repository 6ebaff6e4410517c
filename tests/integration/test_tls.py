"""test_tls.py - TLS and HTTP/2: the server with QG_TLS_CERT/QG_TLS_KEY speaks
HTTPS only and offers h2 by ALPN; without TLS it speaks HTTP/2 to clients
that start with the connection preface (prior knowledge); a bad certificate
is a clear start-up error naming the setting."""

import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qgtest  # noqa: E402
from qgtest import Server  # noqa: E402

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def make_cert(directory):
    key = os.path.join(directory, "key.pem")
    cert = os.path.join(directory, "cert.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


def read_frame_header(sock):
    """Reads one HTTP/2 frame header: (length, type, flags, stream)."""
    buf = b""
    while len(buf) < 9:
        chunk = sock.recv(9 - len(buf))
        if not chunk:
            raise AssertionError("connection closed before an HTTP/2 frame arrived")
        buf += chunk
    length = int.from_bytes(buf[0:3], "big")
    ftype, flags = buf[3], buf[4]
    stream = struct.unpack(">I", buf[5:9])[0] & 0x7FFFFFFF
    return length, ftype, flags, stream


class TlsTest(unittest.TestCase):
    def test_https_with_h2_by_alpn(self):
        tmp = tempfile.mkdtemp(prefix="qgtls-")
        cert, key = make_cert(tmp)
        srv = Server(env={"QG_TLS_CERT": cert, "QG_TLS_KEY": key})
        srv.tls_context = ssl.create_default_context(cafile=cert)
        srv.start()
        try:
            r = srv.request("GET", "/health")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json, {"status": "ok"})
            # a browser offers h2 first: the server must pick it
            ctx = ssl.create_default_context(cafile=cert)
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                    self.assertEqual(s.selected_alpn_protocol(), "h2")
                    s.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                    _, ftype, _, stream = read_frame_header(s)
                    self.assertEqual((ftype, stream), (4, 0), "first frame must be SETTINGS")
            # plain HTTP on the TLS port gets no HTTP answer
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
                raw.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    data = raw.recv(100)
                except (ConnectionResetError, socket.timeout):
                    data = b""
                self.assertFalse(data.startswith(b"HTTP/1.1 200"), data)
        finally:
            srv.stop()
            srv.cleanup()

    def test_h2_prior_knowledge_without_tls(self):
        srv = Server().start()
        try:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                s.sendall(H2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                _, ftype, _, stream = read_frame_header(s)
                self.assertEqual((ftype, stream), (4, 0), "first frame must be SETTINGS")
        finally:
            srv.stop()
            srv.cleanup()

    def test_bad_certificate_is_a_clear_error(self):
        tmp = tempfile.mkdtemp(prefix="qgtls-")
        missing = os.path.join(tmp, "missing.pem")
        srv = Server(env={"QG_TLS_CERT": missing, "QG_TLS_KEY": missing})
        try:
            p = subprocess.run([qgtest.BIN, "serve", "--port", "0"], env=srv.env(), cwd=srv.tmp,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("QG_TLS_CERT", p.stderr)
            self.assertIn(missing, p.stderr)
            only_one = dict(srv.env())
            del only_one["QG_TLS_KEY"]
            p = subprocess.run([qgtest.BIN, "serve", "--port", "0"], env=only_one, cwd=srv.tmp,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("QG_TLS_KEY", p.stderr)
        finally:
            srv.cleanup()


if __name__ == "__main__":
    qgtest.main()
