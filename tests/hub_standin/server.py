"""A stand-in for the Hugging Face Hub on 127.0.0.1, built on the standard library's HTTP server.

It serves a folder of repositories laid out as ``<root>/models/<org>/<name>/...`` and
``<root>/datasets/<org>/<name>/...`` with the endpoints and headers that ``huggingface_hub``,
``transformers``, ``diffusers`` and ``datasets`` use to download models and read datasets:

- ``GET /api/models`` and ``/api/datasets`` (a listing; the course's online probe asks it);
- ``GET /api/{models,datasets}/{repo}`` and ``.../revision/{rev}``: repo info with ``sha`` and ``siblings``;
- ``GET /api/{models,datasets}/{repo}/tree/{rev}[/{path}]`` (``?recursive=1``; one page, no ``Link``);
- ``POST /api/{models,datasets}/{repo}/paths-info/{rev}`` (form or JSON ``paths``);
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}`` and ``/datasets/{repo}/resolve/{rev}/{path}`` with
  ``X-Repo-Commit``, ``ETag`` (and ``X-Linked-Etag``/``X-Linked-Size`` for large-file-like files, as the
  Hub sends for LFS files), ``Content-Length`` and ``Range: bytes=a-b`` reads (206 + ``Content-Range``);
- errors as the Hub gives them: a missing repo is 401 with ``X-Error-Code: RepoNotFound``, a missing
  revision 404 ``RevisionNotFound``, a missing file 404 ``EntryNotFound`` (with ``X-Repo-Commit``).

Every repo has one fixed fake commit (:func:`commit_sha`); ``main`` and that sha are its revisions.
Every request is recorded in :attr:`HubStandin.requests` (and printed when ``HUB_STANDIN_LOG=1``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

REPO_KINDS = {"models": "model", "datasets": "dataset"}
# Files the Hub stores with Git LFS (its .gitattributes): their HEAD carries X-Linked-Etag/-Size.
LFS_SUFFIXES = (".bin", ".safetensors", ".parquet", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".model",
                ".wav", ".mp3", ".flac", ".ogg", ".arrow", ".npy", ".npz", ".onnx", ".zip", ".gz", ".tar")
LFS_MIN_SIZE = 10 * 1024 * 1024
LAST_MODIFIED = "2024-01-01T00:00:00.000Z"


def commit_sha(kind: str, repo_id: str) -> str:
    """The fixed fake commit of a repo: 40 hex digits derived from its kind and id."""
    return hashlib.sha1(f"hub-standin/{kind}/{repo_id}".encode()).hexdigest()


def git_blob_sha(data: bytes) -> str:
    """The object id git gives a file (what the Hub sends as a regular file's ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_lfs(path: str, size: int) -> bool:
    """Whether the Hub would keep this file in LFS (large or binary-looking)."""
    return size >= LFS_MIN_SIZE or path.lower().endswith(LFS_SUFFIXES)


@dataclass(frozen=True)
class Request:
    """One request the stand-in answered."""

    method: str
    path: str
    status: int
    range: str | None = None


class _Repo:
    """A folder served as one repo; file facts (hashes, sizes) are computed once and cached."""

    def __init__(self, kind: str, repo_id: str, folder: Path) -> None:
        self.kind, self.repo_id, self.folder = kind, repo_id, folder
        self.sha = commit_sha(kind, repo_id)
        self._facts: dict[str, dict] = {}
        self._lock = threading.Lock()

    def files(self) -> list[str]:
        """Every file's path inside the repo, sorted, with ``/`` separators."""
        return sorted(p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*")
                      if p.is_file() and ".git" not in p.relative_to(self.folder).parts)

    def folders(self) -> set[str]:
        return {parent for f in self.files() for parent in _parents(f)}

    def file_entry(self, path: str) -> dict:
        """A file's tree entry, as the Hub's tree and paths-info endpoints give it."""
        with self._lock:
            if path not in self._facts:
                data = (self.folder / path).read_bytes()
                entry: dict = {"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path}
                if is_lfs(path, len(data)):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                self._facts[path] = entry
            return dict(self._facts[path])

    def folder_entry(self, path: str) -> dict:
        return {"type": "directory", "oid": hashlib.sha1(f"tree/{self.repo_id}/{path}".encode()).hexdigest(),
                "size": 0, "path": path}

    def with_commit(self, entry: dict) -> dict:
        """An entry with the fields ``expand=True`` adds (last commit, security scan)."""
        entry = dict(entry)
        entry["lastCommit"] = {"id": self.sha, "title": "stand-in commit", "date": LAST_MODIFIED}
        if entry["type"] == "file":
            entry["securityFileStatus"] = {"status": "safe"}
        return entry

    def info(self) -> dict:
        """The repo info (``/api/models/{repo}``), with ``sha`` and ``siblings``."""
        org, _, name = self.repo_id.rpartition("/")
        info = {"_id": self.sha[:24], "id": self.repo_id, "author": org or None, "sha": self.sha,
                "lastModified": LAST_MODIFIED, "createdAt": LAST_MODIFIED, "private": False, "gated": False,
                "disabled": False, "downloads": 0, "likes": 0, "tags": [],
                "siblings": [{"rfilename": f} for f in self.files()]}
        card = self.folder / "README.md"
        if card.is_file():
            card_data = _card_yaml(card.read_text(encoding="utf-8"))
            if card_data is not None:
                info["cardData"] = card_data
        if self.kind == "model":
            config = self.folder / "config.json"
            info["library_name"] = "diffusers" if (self.folder / "model_index.json").is_file() else "transformers"
            if config.is_file():
                info["config"] = {k: v for k, v in json.loads(config.read_text()).items()
                                  if k in ("architectures", "model_type")}
        else:
            info["description"] = ""
            info["citation"] = ""
        return info


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _card_yaml(text: str) -> dict | None:
    """The YAML header of a card, parsed if PyYAML is there (it is, with datasets)."""
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    try:
        import yaml
    except ImportError:  # pragma: no cover - datasets depends on PyYAML
        return None
    data = yaml.safe_load(text[3:end])
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: datasets' streaming makes many small range reads
    server: "_Server"

    # ------------------------------------------------------------------ plumbing

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        if os.environ.get("HUB_STANDIN_LOG", "").strip() in ("1", "true", "yes"):
            sys.stderr.write("hub-standin: " + (format % args) + "\n")

    def _record(self, status: int) -> None:
        self.server.requests.append(Request(self.command, self.path, status, self.headers.get("Range")))

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, payload, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        if code:
            extra["X-Error-Code"] = code
        extra["X-Error-Message"] = message
        self._json({"error": message}, status, extra)

    def _repo(self, kind: str, repo_id: str) -> _Repo | None:
        return self.server.repo(kind, repo_id)

    def _repo_missing(self) -> None:
        # The Hub answers 401 for a repo it does not show you (missing, private or gated).
        self._error(401, "RepoNotFound", "Repository not found")

    def _check_revision(self, repo: _Repo, revision: str) -> bool:
        if revision in ("main", repo.sha, "refs/heads/main"):
            return True
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return False

    # ------------------------------------------------------------------ verbs

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
        self._dispatch()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            # Read any body now: on a kept-alive connection an unread body would be taken for the next request.
            length = int(self.headers.get("Content-Length") or 0)
            self._body = self.rfile.read(length).decode() if length else ""
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.split("/") if p]
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if parts[:1] == ["api"]:
                self._api(parts[1:], query)
            else:
                self._resolve(parts)
        except BrokenPipeError:  # the client hung up (it had what it wanted)
            pass
        except Exception as error:  # pragma: no cover - a bug here must be seen, not hang a client
            self._error(500, None, f"hub stand-in error: {type(error).__name__}: {error}")

    # ------------------------------------------------------------------ /api/...

    def _api(self, parts: list[str], query: dict[str, str]) -> None:
        if not parts or parts[0] not in REPO_KINDS:
            self._error(404, None, "Sorry, we can't find the page you are looking for.")
            return
        kind = REPO_KINDS[parts[0]]
        if len(parts) == 1:  # a listing, e.g. /api/models?limit=1
            repos = self.server.all_repos(kind)
            limit = int(query.get("limit", len(repos)) or len(repos))
            self._json([{"_id": r.sha[:24], "id": r.repo_id, "likes": 0, "private": False, "downloads": 0,
                         "tags": [], "createdAt": LAST_MODIFIED} for r in repos[:limit]])
            return
        # The repo id is one or two segments; what follows is an action.
        for n_id in (2, 1):
            repo_id = "/".join(parts[1 : 1 + n_id])
            rest = parts[1 + n_id :]
            repo = self._repo(kind, repo_id)
            if repo is not None:
                break
        else:
            self._repo_missing()
            return
        if not rest:
            self._json(repo.info())
        elif rest[0] == "revision" and len(rest) >= 2:
            if self._check_revision(repo, "/".join(rest[1:])):
                self._json(repo.info())
        elif rest[0] == "tree" and len(rest) >= 2:
            self._tree(repo, rest[1], "/".join(rest[2:]), query)
        elif rest[0] == "paths-info" and len(rest) >= 2 and self.command == "POST":
            self._paths_info(repo, "/".join(rest[1:]))
        elif rest[0] == "refs":
            self._json({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.sha}],
                        "converts": [], "tags": []})
        else:
            self._error(404, None, f"the hub stand-in has no endpoint /api/{'/'.join(parts)}")

    def _tree(self, repo: _Repo, revision: str, path: str, query: dict[str, str]) -> None:
        if not self._check_revision(repo, revision):
            return
        recursive = query.get("recursive", "").lower() in ("1", "true")
        expand = query.get("expand", "").lower() in ("1", "true")
        path = path.strip("/")
        files, folders = repo.files(), repo.folders()
        if path and path not in folders:
            if path in files:  # the Hub answers a file's path with an error too
                self._error(404, "EntryNotFound", f"{path} is not a directory", {"X-Repo-Commit": repo.sha})
            else:
                self._error(404, "EntryNotFound", f"{path} does not exist on \"{revision}\"",
                            {"X-Repo-Commit": repo.sha})
            return
        prefix = f"{path}/" if path else ""
        entries = []
        for folder in sorted(folders):
            if folder.startswith(prefix) and (recursive or "/" not in folder[len(prefix):]):
                entries.append(repo.folder_entry(folder))
        for file in files:
            if file.startswith(prefix) and (recursive or "/" not in file[len(prefix):]):
                entries.append(repo.file_entry(file))
        if expand:
            entries = [repo.with_commit(e) for e in entries]
        self._json(entries)

    def _paths_info(self, repo: _Repo, revision: str) -> None:
        if not self._check_revision(repo, revision):
            return
        body = self._body
        if "json" in (self.headers.get("Content-Type") or ""):
            payload = json.loads(body or "{}")
            paths, expand = payload.get("paths", []), bool(payload.get("expand"))
        else:
            form = parse_qs(body)
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[-1].lower() in ("1", "true")
        if isinstance(paths, str):
            paths = [paths]
        files, folders = set(repo.files()), repo.folders()
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in files:
                entries.append(repo.file_entry(path))
            elif path in folders or path == "":
                entries.append(repo.folder_entry(path))
        if expand:
            entries = [repo.with_commit(e) for e in entries]
        self._json(entries)

    # ------------------------------------------------------------------ /{repo}/resolve/{rev}/{path}

    def _resolve(self, parts: list[str]) -> None:
        kind = "model"
        if parts[:1] == ["datasets"]:
            kind, parts = "dataset", parts[1:]
        elif parts[:1] == ["models"]:
            parts = parts[1:]
        if "resolve" not in parts or self.command == "POST":
            self._error(404, None, "Sorry, we can't find the page you are looking for.")
            return
        at = parts.index("resolve")
        repo = self._repo(kind, "/".join(parts[:at]))
        if repo is None or len(parts) < at + 3:
            self._repo_missing()
            return
        if not self._check_revision(repo, parts[at + 1]):
            return
        path = "/".join(parts[at + 2 :])
        file = repo.folder / path
        if path not in repo.files():
            self._error(404, "EntryNotFound", "Entry not found", {"X-Repo-Commit": repo.sha})
            return
        entry = repo.file_entry(path)
        size = entry["size"]
        headers = {"X-Repo-Commit": repo.sha, "ETag": f'"{entry["oid"]}"', "Accept-Ranges": "bytes",
                   "Cache-Control": "no-store"}
        if "lfs" in entry:
            headers["X-Linked-Etag"] = f'"{entry["lfs"]["oid"]}"'
            headers["X-Linked-Size"] = str(size)
        content_type = "application/json" if path.endswith(".json") else "application/octet-stream"
        wanted = _byte_range(self.headers.get("Range"), size)
        if wanted == "unsatisfiable":
            headers["Content-Range"] = f"bytes */{size}"
            self._send(416, b"", headers, "text/plain")
            return
        start, end = wanted if wanted else (0, size - 1)
        with open(file, "rb") as handle:
            handle.seek(start)
            body = handle.read(max(0, end - start + 1))
        if wanted:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(206 if wanted else 200, body, headers, content_type)


def _byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """Parse ``Range: bytes=a-b`` (also ``a-`` and ``-n``); ``None`` for no/ignored range."""
    if not header or not header.strip().startswith("bytes="):
        return None
    spec = header.strip()[len("bytes="):].split(",")[0].strip()
    first, _, last = spec.partition("-")
    try:
        if first == "":  # the last n bytes
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return max(0, size - n), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.root = root
        self.requests: list[Request] = []
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._lock = threading.Lock()

    def repo(self, kind: str, repo_id: str) -> _Repo | None:
        if not repo_id or ".." in repo_id.split("/"):
            return None
        folder = self.root / f"{kind}s" / repo_id
        if not folder.is_dir() or not any(folder.iterdir()):
            return None
        with self._lock:
            key = (kind, repo_id)
            if key not in self._repos:
                self._repos[key] = _Repo(kind, repo_id, folder)
            return self._repos[key]

    def all_repos(self, kind: str) -> list[_Repo]:
        base = self.root / f"{kind}s"
        if not base.is_dir():
            return []
        found = []
        for org in sorted(p for p in base.iterdir() if p.is_dir()):
            for name in sorted(p for p in org.iterdir() if p.is_dir()):
                repo = self.repo(kind, f"{org.name}/{name.name}")
                if repo is not None:
                    found.append(repo)
        return found


class HubStandin:
    """A running stand-in: ``endpoint`` (``http://127.0.0.1:PORT``), ``requests`` seen, ``close()``."""

    def __init__(self, root: str | os.PathLike, port: int = 0) -> None:
        root = Path(root).resolve()
        if not root.is_dir():
            raise FileNotFoundError(f"root: {str(root)!r} is not a folder of repos (models/, datasets/)")
        self._server = _Server(root, port)
        self.root = root
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-standin", daemon=True)
        self._thread.start()

    @property
    def requests(self) -> list[Request]:
        return self._server.requests

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "HubStandin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def serve(root: str | os.PathLike, port: int = 0) -> Iterator[str]:
    """Serve the repos under ``root`` on 127.0.0.1 while the block runs; yields the endpoint URL.

    >>> with serve(root) as endpoint:           # doctest: +SKIP
    ...     os.environ["HF_ENDPOINT"] = endpoint
    """
    standin = HubStandin(root, port)
    try:
        yield standin.endpoint
    finally:
        standin.close()
