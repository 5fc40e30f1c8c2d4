#!/usr/bin/env python3
"""hub_mock.py — a local stand-in for the Hugging Face Hub endpoints that
huggingface_hub (and phiq pull) use, serving one directory as one model repo.

  GET  /api/models/{repo}/revision/{rev}     {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD/GET /{repo}/resolve/{rev}/{file}      small files: 200, ETag = git blob oid;
                                             LFS files (*.safetensors, *.gguf): 302 to
                                             /cdn/{sha256} with X-Linked-Etag (sha256),
                                             X-Linked-Size, ETag (the pointer's oid)
  GET  /cdn/{sha256}                         the bytes, with Range (206)
Every resolve answer carries X-Repo-Commit. Unknown repo: 404 RepoNotFound;
unknown revision: 404 RevisionNotFound; unknown file: 404 EntryNotFound.

Binds 127.0.0.1 on an ephemeral port (written to --port-file), logs one JSON
line per request to --log ({"method", "path", "range", "bytes"}: the body
bytes actually sent). Faults for tests:
  --drop-after N   the first GET of each LFS blob sends N body bytes, then drops
  --corrupt        LFS blobs are served with one byte flipped
  --gated TOKEN    401 without "Authorization: Bearer TOKEN" (403 with another)
Stops on SIGTERM, or by itself after --lifetime seconds (default 300).
"""
import argparse
import hashlib
import http.server
import json
import os
import re
import signal
import socketserver
import sys
import threading
import urllib.parse

LFS = re.compile(r".*\.(safetensors|gguf|bin)$")


def git_oid(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--drop-after", type=int, default=-1)
    ap.add_argument("--corrupt", action="store_true")
    ap.add_argument("--gated", default="")
    ap.add_argument("--lifetime", type=float, default=300)
    a = ap.parse_args()

    files = {}
    for dirpath, dirnames, names in os.walk(a.root):
        dirnames[:] = sorted(d for d in dirnames if d != "reference")
        for n in sorted(names):
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, a.root).replace(os.sep, "/")
            data = open(full, "rb").read()
            lfs = bool(LFS.match(rel))
            e = {"data": data, "lfs": lfs, "sha256": hashlib.sha256(data).hexdigest() if lfs else None}
            if lfs:  # the git blob the repo holds is the LFS pointer file
                ptr = ("version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize %d\n" % (e["sha256"], len(data))).encode()
                e["oid"] = git_oid(ptr)
            else:
                e["oid"] = git_oid(data)
            files[rel] = e
    commit = hashlib.sha1(json.dumps(sorted((k, v["oid"]) for k, v in files.items())).encode()).hexdigest()
    by_sha = {v["sha256"]: v for v in files.values() if v["lfs"]}
    dropped = set()
    lock = threading.Lock()
    logf = open(a.log, "a", buffering=1)

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def log(self, nbytes):
            with lock:
                logf.write(json.dumps({"method": self.command, "path": self.path,
                                       "range": self.headers.get("Range"), "bytes": nbytes}) + "\n")

        def reply(self, code, headers=(), body=b"", send_body=True):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body and body:
                self.wfile.write(body)
            self.log(len(body) if send_body else 0)

        def error(self, code, err, msg):
            body = json.dumps({"error": msg}).encode()
            self.reply(code, [("X-Error-Code", err), ("X-Error-Message", msg), ("Content-Type", "application/json")],
                       body, self.command != "HEAD")

        def authorized(self):
            if not a.gated:
                return True
            auth = self.headers.get("Authorization")
            if auth is None:
                self.error(401, "GatedRepo", "Access to model %s is restricted. You must be authenticated." % a.repo)
                return False
            if auth != "Bearer " + a.gated:
                self.error(403, "GatedRepo", "Access to model %s is restricted and you are not in the authorized list." % a.repo)
                return False
            return True

        def do_HEAD(self):
            self.handle_any()

        def do_GET(self):
            self.handle_any()

        def handle_any(self):
            path = urllib.parse.urlsplit(self.path).path
            if path.startswith("/cdn/"):
                return self.cdn(path[5:])
            api = "/api/models/" + a.repo + "/revision/"
            if path.startswith("/api/models/"):
                if not path.startswith(api):
                    return self.error(404, "RepoNotFound", "Repository not found")
                if not self.authorized():
                    return
                rev = urllib.parse.unquote(path[len(api):])
                if rev not in ("main", commit):
                    return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
                body = json.dumps({"_id": "mock", "id": a.repo, "modelId": a.repo, "sha": commit,
                                   "gated": "manual" if a.gated else False, "private": False,
                                   "siblings": [{"rfilename": k} for k in sorted(files)]}).encode()
                return self.reply(200, [("Content-Type", "application/json")], body, self.command != "HEAD")
            prefix = "/" + a.repo + "/resolve/"
            if not path.startswith(prefix):
                return self.error(404, "RepoNotFound", "Repository not found")
            if not self.authorized():
                return
            rest = path[len(prefix):]
            rev, _, fname = rest.partition("/")
            rev = urllib.parse.unquote(rev)
            fname = urllib.parse.unquote(fname)
            if rev not in ("main", commit):
                return self.error(404, "RevisionNotFound", "Invalid rev id: " + rev)
            e = files.get(fname)
            if e is None:
                return self.error(404, "EntryNotFound", "Entry not found")
            common = [("X-Repo-Commit", commit), ("Accept-Ranges", "bytes")]
            if e["lfs"]:
                host = self.headers.get("Host")
                loc = "http://%s/cdn/%s" % (host, e["sha256"])
                return self.reply(302, common + [("Location", loc), ("ETag", '"%s"' % e["oid"]),
                                                 ("X-Linked-Etag", '"%s"' % e["sha256"]),
                                                 ("X-Linked-Size", str(len(e["data"])))], b"", False)
            return self.reply(200, common + [("ETag", '"%s"' % e["oid"]), ("Content-Type", "application/octet-stream")],
                              e["data"], self.command != "HEAD")

        def cdn(self, sha):
            e = by_sha.get(sha)
            if e is None:
                return self.error(404, "EntryNotFound", "no such blob")
            data = e["data"]
            if a.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            rng = self.headers.get("Range")
            m = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if m:
                start = int(m.group(1))
                if start >= len(data):
                    return self.reply(416, [("Content-Range", "bytes */%d" % len(data))])
            body = data[start:]
            code = 206 if m else 200
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", '"%s"' % sha)
            if m:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            self.end_headers()
            if self.command == "HEAD":
                return self.log(0)
            with lock:
                drop = a.drop_after >= 0 and sha not in dropped
                if drop:
                    dropped.add(sha)
            if drop:
                part = body[:a.drop_after]
                self.wfile.write(part)
                self.wfile.flush()
                self.log(len(part))
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)
            self.log(len(body))

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = S(("127.0.0.1", 0), H)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n%s\n" % (srv.server_address[1], commit))
    os.rename(tmp, a.port_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    threading.Timer(a.lifetime, srv.shutdown).start()
    srv.serve_forever()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
