"""A stand-in for the Hugging Face Hub on 127.0.0.1, for testing `billion download`.

It serves small generated repositories the way the Hub does, as far as downloaders see it:
  GET  /api/models/<repo>/revision/<rev>        model info: sha, siblings, gated
  GET  /api/models/<repo>/tree/<rev>?recursive  file list (paginated with Link: rel="next")
  HEAD/GET /<repo>/resolve/<rev>/<path>         small files: 200 + ETag (git blob sha1);
                                                LFS files: 302 to /cdn/<sha256> + X-Linked-Etag/Size
  HEAD/GET /cdn/<sha256>                        the "CDN": content with Range support
plus X-Repo-Commit, X-Error-Code/X-Error-Message for missing and gated repos (401/403/404), and
  HEAD/GET <path>                               plain files added with `hub.add_file(path, data)`
                                                (the data sets' mirrors), with Range support

Faults are injected per file path with `hub.fault(path, ...)` so tests can drop connections,
throttle, corrupt bodies, answer 500, ignore Range, loop redirects or lie about Content-Length.
Every request is logged (method, path, headers) for assertions.
"""

import hashlib
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, repo_id, files, lfs=(), gated=False, allowed_tokens=(), private=False):
        self.repo_id = repo_id
        self.files = dict(files)  # path -> bytes
        self.lfs = set(lfs)  # paths stored with LFS (served through the CDN)
        self.gated = gated
        self.private = private
        self.allowed_tokens = set(allowed_tokens)
        digest = hashlib.sha1(repo_id.encode())
        for path in sorted(self.files):
            digest.update(path.encode() + self.files[path])
        self.commit = digest.hexdigest()

    def etag(self, path):
        data = self.files[path]
        return hashlib.sha256(data).hexdigest() if path in self.lfs else git_blob_sha1(data)

    def tree(self):
        out = []
        for path in sorted(self.files):
            data = self.files[path]
            entry = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
            if path in self.lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entry["oid"] = git_blob_sha1(b"version https://git-lfs.github.com/spec/v1\n" + data[:8])
            out.append(entry)
        return out


class FakeHub:
    def __init__(self, page_size=4):
        self.repos = {}
        self.faults = {}  # path -> dict of fault settings
        self.api_faults = {}  # repo_id -> "malformed_json"
        self.valid_tokens = set()
        self.log = []
        self.static = {}  # URL path -> bytes: plain files outside the Hub's protocol
        self.lock = threading.Lock()
        self.page_size = page_size
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection: a dropped one stays dropped

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub._handle(self, head=True)

            def do_GET(self):
                hub._handle(self, head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # The "CDN" is the same server under another host name, as the real CDN is another host:
        # clients must not follow it during HEAD, and must not send it the token.
        self.cdn_url = f"http://localhost:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # -- test-facing API ----------------------------------------------------------------------
    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_repo(self, repo):
        self.repos[repo.repo_id] = repo
        return repo

    def add_file(self, path, data):
        """Serves `data` at the URL path (e.g. "/hendrycks/data.tar"); faults are keyed by that path."""
        self.static[path] = data
        return self.url + path

    def fault(self, path, **settings):
        with self.lock:
            self.faults[path] = dict(settings)

    def clear_faults(self):
        with self.lock:
            self.faults.clear()
            self.api_faults.clear()

    def requests(self, method=None, contains=None):
        with self.lock:
            return [r for r in self.log if (method is None or r["method"] == method)
                    and (contains is None or contains in r["path"])]

    def clear_log(self):
        with self.lock:
            self.log.clear()

    # -- request handling -------------------------------------------------------------------------
    def _send(self, h, status, headers=None, body=b"", head=False, length=None):
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        if not head and body:
            try:
                h.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def _error(self, h, status, code, message, head, extra=None):
        headers = {"X-Error-Code": code, "X-Error-Message": message, "Content-Type": "application/json"}
        headers.update(extra or {})
        self._send(h, status, headers, json.dumps({"error": message}).encode(), head)

    def _auth(self, h):
        value = h.headers.get("Authorization", "")
        return value[len("Bearer "):] if value.startswith("Bearer ") else None

    def _check_access(self, h, repo, head, api):
        """Returns True when the request may go on; otherwise sends the Hub's error answer."""
        token = self._auth(h)
        if token is not None and token not in self.valid_tokens:
            self._error(h, 401, "", "Invalid credentials in Authorization header", head)
            return False
        if repo.private and (token is None or token not in repo.allowed_tokens):
            self._error(h, 401, "RepoNotFound", "Repository not found", head)
            return False
        if repo.gated and not api:
            if token is None:
                self._error(h, 401, "GatedRepo", "Access to model %s is restricted. You must have access to it "
                            "and be authenticated to access it. Please log in." % repo.repo_id, head,
                            {"X-Repo-Commit": repo.commit})
                return False
            if token not in repo.allowed_tokens:
                self._error(h, 403, "GatedRepo", "Access to model %s is restricted and you are not in the "
                            "authorized list. Visit https://huggingface.co/%s to ask for access."
                            % (repo.repo_id, repo.repo_id), head, {"X-Repo-Commit": repo.commit})
                return False
        return True

    def _find_repo(self, parts):
        if len(parts) < 2:
            return None
        return self.repos.get(parts[0] + "/" + parts[1])

    def _handle(self, h, head):
        parsed = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(parsed.path)
        query = urllib.parse.parse_qs(parsed.query)
        with self.lock:
            self.log.append({"method": h.command, "path": path, "query": parsed.query,
                             "headers": {k.lower(): v for k, v in h.headers.items()}})
        parts = path.strip("/").split("/")
        try:
            if parts[0] == "api" and len(parts) >= 3 and parts[1] == "models":
                return self._api(h, parts[2:], query, head)
            if parts[0] == "cdn" and len(parts) == 2:
                return self._cdn(h, parts[1], query, head)
            if len(parts) >= 5 and parts[2] == "resolve":
                return self._resolve(h, parts, head)
            if path in self.static:
                return self._serve_bytes(h, path, self.static[path], {}, head)
            self._send(h, 404, {}, b"not found", head)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _api(self, h, parts, query, head):
        repo = self._find_repo(parts)
        if repo is None:
            return self._error(h, 404, "RepoNotFound", "Repository not found", head)
        if not self._check_access(h, repo, head, api=True):
            return
        if self.api_faults.get(repo.repo_id) == "malformed_json":
            return self._send(h, 200, {"Content-Type": "application/json"}, b'{"sha": "abc", "siblings": [', head)
        rest = parts[2:]
        if len(rest) >= 2 and rest[0] == "revision":
            rev = "/".join(rest[1:])
            if rev not in ("main", repo.commit):
                return self._error(h, 404, "RevisionNotFound", "Invalid rev id: " + rev, head)
            info = {"id": repo.repo_id, "sha": repo.commit, "private": repo.private,
                    "gated": "manual" if repo.gated else False,
                    "siblings": [{"rfilename": p} for p in sorted(repo.files)]}
            return self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(info).encode(), head)
        if len(rest) >= 2 and rest[0] == "tree":
            rev = rest[1]
            if rev not in ("main", repo.commit):
                return self._error(h, 404, "RevisionNotFound", "Invalid rev id: " + rev, head)
            entries = repo.tree()
            start = int(query.get("cursor", ["0"])[0])
            page = entries[start:start + self.page_size]
            headers = {"Content-Type": "application/json"}
            if start + self.page_size < len(entries):
                nxt = "%s/api/models/%s/tree/%s?recursive=true&expand=false&cursor=%d" % (
                    self.url, repo.repo_id, rev, start + self.page_size)
                headers["Link"] = '<%s>; rel="next"' % nxt
            return self._send(h, 200, headers, json.dumps(page).encode(), head)
        return self._send(h, 404, {}, b"no such api", head)

    def _resolve(self, h, parts, head):
        repo = self._find_repo(parts)
        if repo is None:
            return self._error(h, 401, "RepoNotFound", "Repository not found", head)
        if not self._check_access(h, repo, head, api=False):
            return
        rev = parts[3]
        filename = "/".join(parts[4:])
        if rev not in ("main", repo.commit):
            return self._error(h, 404, "RevisionNotFound", "Invalid rev id: " + rev, head)
        fault = self.faults.get(filename, {})
        if filename not in repo.files or fault.get("missing"):
            return self._error(h, 404, "EntryNotFound", "Entry not found", head, {"X-Repo-Commit": repo.commit})
        if self._status_fault(h, fault, "head_status" if head else "resolve_status", head):
            return
        data = repo.files[filename]
        common = {"X-Repo-Commit": repo.commit}
        if filename in repo.lfs:
            sha = hashlib.sha256(data).hexdigest()
            headers = dict(common, **{"X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)),
                                      "ETag": '"%s"' % git_blob_sha1(data),
                                      "Location": "%s/cdn/%s?file=%s" % (self.cdn_url, sha, urllib.parse.quote(filename))})
            return self._send(h, 302, headers, b"", head)
        headers = dict(common, **{"ETag": '"%s"' % git_blob_sha1(data)})
        return self._serve_bytes(h, filename, data, headers, head)

    def _status_fault(self, h, fault, key, head):
        with self.lock:
            seq = fault.get(key)
            status = seq.pop(0) if seq else None
        if status is None:
            return False
        extra = {"Retry-After": "0"} if status == 429 else {}
        self._send(h, status, extra, b"temporary failure", head)
        return True

    def _cdn(self, h, sha, query, head):
        filename = query.get("file", [""])[0]
        data = None
        for repo in self.repos.values():
            if filename in repo.files and hashlib.sha256(repo.files[filename]).hexdigest() == sha:
                data = repo.files[filename]
        if data is None:
            return self._send(h, 404, {}, b"no such object", head)
        fault = self.faults.get(filename, {})
        if fault.get("redirect_loop"):
            return self._send(h, 302, {"Location": "%s/cdn/%s?file=%s" % (self.cdn_url, sha, urllib.parse.quote(filename))},
                              b"", head)
        if self._status_fault(h, fault, "cdn_status", head):
            return
        return self._serve_bytes(h, filename, data, {}, head)

    def _serve_bytes(self, h, filename, data, headers, head):
        fault = self.faults.get(filename, {})
        if fault.get("corrupt"):
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start = 0
        status = 200
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and not fault.get("ignore_range"):
            start = int(rng[len("bytes="):].split("-")[0])
            if start >= len(data):
                return self._send(h, 416, {"Content-Range": "bytes */%d" % len(data)}, b"", head)
            status = 206
            headers = dict(headers, **{"Content-Range": "bytes %d-%d/%d" % (start, len(data) - 1, len(data))})
        body = data[start:]
        headers = dict(headers, **{"Accept-Ranges": "bytes"})
        if head:
            return self._send(h, status, headers, body, head=True)
        with self.lock:
            drop_at = fault.pop("drop_at", None)
            lie = fault.get("lie_length")
        throttle = fault.get("throttle")  # bytes per second
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body) + (lie or 0)))
        h.end_headers()
        stall_at = fault.get("stall_at")
        if stall_at is not None:
            # Send part of the body, then go silent with the connection open.
            h.wfile.write(body[:max(0, stall_at - start)])
            h.wfile.flush()
            time.sleep(fault.get("hang_s", 0))
            return
        if drop_at is not None:
            # Send part of the body, then cut the connection, like a reset mid-file.
            h.wfile.write(body[:max(0, drop_at - start)])
            h.wfile.flush()
            h.close_connection = True
            return
        if throttle:
            chunk = max(1, throttle // 20)
            for i in range(0, len(body), chunk):
                h.wfile.write(body[i:i + chunk])
                h.wfile.flush()
                time.sleep(chunk / throttle)
                if not self.faults.get(filename, {}).get("throttle"):
                    throttle = None
                    h.wfile.write(body[i + chunk:])
                    break
        else:
            h.wfile.write(body)
        h.wfile.flush()
        if lie:
            time.sleep(fault.get("hang_s", 0))  # keep the connection open: the client must time out
