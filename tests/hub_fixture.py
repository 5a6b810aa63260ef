"""A fixture Hugging Face Hub on 127.0.0.1: repos from local folders, served in the Hub's HTTP layout.

Just enough of the Hub's API for ``huggingface_hub.snapshot_download`` / ``hf_hub_download`` and for
``datasets.load_dataset`` of a repo of data files: repo info (``/api/{models,datasets}/<repo>[/revision/<rev>]``),
the tree (``/api/<type>/<repo>/tree/<rev>[/<path>]``), ``paths-info`` and file downloads (``[datasets/]<repo>/
resolve/<rev>/<path>``, HEAD and GET, with the commit, ETag and size headers). Point ``HF_ENDPOINT`` at
:attr:`HubFixture.url`; every request is recorded in :attr:`HubFixture.requests`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SHA = "0123456789abcdef0123456789abcdef01234567"


class HubFixture:
    def __init__(self, repos: dict[tuple[str, str], Path]):
        """``repos``: ``{("model" | "dataset", "org/name"): folder}``."""
        self.repos = repos
        self.requests: list[str] = []
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                fixture._serve(self, body=False)

            def do_GET(self):
                fixture._serve(self, body=True)

            def do_POST(self):
                fixture._serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubFixture:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------------------------ routing
    def _repo(self, kind: str, parts: list[str]) -> tuple[Path | None, str, list[str]]:
        for n in (2, 1):
            repo = "/".join(parts[:n])
            if (kind, repo) in self.repos:
                return self.repos[(kind, repo)], repo, parts[n:]
        return None, "", parts

    def _files(self, root: Path) -> list[Path]:
        return sorted(p for p in root.rglob("*") if p.is_file())

    def _entry(self, root: Path, p: Path) -> dict:
        rel = p.relative_to(root).as_posix()
        if p.is_dir():
            return {"type": "directory", "path": rel, "oid": hashlib.sha1(rel.encode()).hexdigest()}
        data = p.read_bytes()
        return {"type": "file", "path": rel, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}

    def _serve(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        url = urllib.parse.urlsplit(h.path)
        self.requests.append(f"{h.command} {url.path}")
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        if parts[:1] == ["api"] and len(parts) > 2 and parts[1] in ("models", "datasets"):
            return self._api(h, parts[1][:-1], parts[2:], body)
        kind = "dataset" if parts[:1] == ["datasets"] else "model"
        root, repo, rest = self._repo(kind, parts[1:] if kind == "dataset" else parts)
        if root is None or len(rest) < 3 or rest[0] != "resolve":
            return self._send(h, 404, b'{"error": "not found"}', {"X-Error-Code": "RepoNotFound"}, body)
        f = root.joinpath(*rest[2:])
        if not f.is_file():
            return self._send(h, 404, b'{"error": "entry not found"}', {"X-Error-Code": "EntryNotFound",
                                                                       "X-Repo-Commit": SHA}, body)
        data = f.read_bytes()
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        self._send(h, 200, data, {"X-Repo-Commit": SHA, "ETag": etag, "Content-Type": "application/octet-stream"}, body)

    def _api(self, h, kind: str, parts: list[str], body: bool) -> None:
        root, repo, rest = self._repo(kind, parts)
        if root is None:
            return self._send(h, 404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, body)
        if not rest or rest[0] == "revision":
            info = {"id": repo, "sha": SHA, "private": False, "gated": False, "disabled": False,
                    "siblings": [{"rfilename": p.relative_to(root).as_posix()} for p in self._files(root)]}
            return self._json(h, info, body)
        if rest[0] == "tree":
            base = root.joinpath(*rest[2:])
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            items = sorted(base.rglob("*") if recursive else base.iterdir()) if base.is_dir() else []
            return self._json(h, [self._entry(root, p) for p in items], body)
        if rest[0] == "paths-info":
            length = int(h.headers.get("Content-Length") or 0)
            raw = h.rfile.read(length).decode() if length else ""
            form = urllib.parse.parse_qs(raw)
            paths = form.get("paths", [])
            if not paths and raw.startswith("{"):
                paths = json.loads(raw).get("paths", [])
            return self._json(h, [self._entry(root, root / p) for p in paths if (root / p).exists()], body)
        self._send(h, 404, b'{"error": "not found"}', {}, body)

    def _json(self, h, obj, body: bool) -> None:
        self._send(h, 200, json.dumps(obj).encode(), {"Content-Type": "application/json", "X-Repo-Commit": SHA}, body)

    @staticmethod
    def _send(h, code: int, data: bytes, headers: dict, body: bool) -> None:
        h.send_response(code)
        for k, v in {**headers, "Content-Length": str(len(data))}.items():
            h.send_header(k, v)
        h.end_headers()
        if body:
            h.wfile.write(data)
