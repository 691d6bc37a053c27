"""The one download helper behind download_weights.py and download_dataset.py.

``download`` streams a file to ``<name>.part`` with a progress bar, resumes a partial file with an HTTP
Range request (and starts over when the server ignores it), retries connection errors and 5xx answers with
exponential backoff, and renames the file into place only once it is known to be complete:

- its size and SHA-256 match, where they are known;
- else its length matches the one the server announced (Content-Length or Content-Range);
- else (the server sent no length, so a cut connection looks like the end of the file) its contents check
  out: a zip's central directory lists entries that all lie inside the file, a tar reads to its
  end-of-archive marker, a rar lists with the unpacking tool, a JSON file parses; failing that, the server
  confirms the end when asked for the bytes after it (HTTP 416 with the total).

Anything else stays ``<name>.part``, and the next attempt (or run) resumes it. A complete file already in
place makes it return at once, without a request. Failures are ``DownloadError`` with a one-line message;
``VerificationError`` says which file on disk is not the expected one.

``safe_extract`` unpacks zip and tar archives (and rar, through an external tool) after checking every
entry: absolute paths, ``..`` components, symlinks, hard links and special files are refused before anything
is written.

Only the standard library and tqdm are used, so the CLIs start fast and the tests need no network: every URL
can be redirected with the ``AASIST_SER_*`` environment variables (``MIRROR_ENV`` and friends) or the CLIs'
flags.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import html.parser
import http.client
import json
import lzma
import os
import re
import shlex
import shutil
import ssl
import stat
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from antispoof.errors import first_line

# Environment variables (each CLI also has a flag for it).
MIRROR_ENV = "AASIST_SER_MIRROR"  # base URL holding every file by its own name: <mirror>/<filename>
GDRIVE_URL_ENV = "AASIST_SER_GDRIVE_URL"  # Google Drive download URL template with an {id} placeholder
KAGGLE_API_ENV = "AASIST_SER_KAGGLE_API"  # Kaggle REST API base URL

DEFAULT_GDRIVE_URL = "https://drive.google.com/uc?export=download&id={id}"
DEFAULT_KAGGLE_API = "https://www.kaggle.com/api/v1"

USER_AGENT = "aasist-ser-downloader/1.0 (+python urllib)"
CHUNK_SIZE = 1 << 20
RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}
MAX_BACKOFF_S = 60.0
MAX_CONFIRMATION_PAGES = 3


class DownloadError(RuntimeError):
    """A download or unpacking step failed; the message is one line that names the file and the problem."""


class UnsafeArchiveError(DownloadError):
    """An archive holds an entry that would land outside the target folder (or is a link or device)."""


class LocalProblemError(DownloadError):
    """A problem on this machine (disk full, file busy): another source would not help."""


class VerificationError(DownloadError):
    """A file is not the expected one (damaged, or another file). ``path`` is where it still lies on disk (the
    file to delete before fetching it again), or None when it was already deleted."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


class _Retryable(Exception):
    """A transient failure: the attempt is retried (resuming the partial file) after a backoff."""


class _RestartFromZero(Exception):
    """The partial file cannot be resumed: discard it and download again from the first byte."""


@dataclass(frozen=True)
class Source:
    """One place a file can be fetched from.

    ``google_drive`` makes the download follow Google Drive's "can't scan this file for viruses" confirmation
    page. ``authorization`` is sent to this URL's host only, never to a host it redirects to (Kaggle redirects
    to signed cloud-storage URLs that reject a second credential).
    """

    url: str
    google_drive: bool = False
    authorization: str | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------------------- small tools


def human_size(n: int | None) -> str:
    if n is None:
        return "unknown size"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def sha256_of(path: str | Path, chunk_size: int = CHUNK_SIZE) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verification_problem(path: Path, sha256: str | None = None, size: int | None = None) -> str | None:
    """Why ``path`` is not the expected file (missing, wrong size, wrong SHA-256), or None when it is.

    With neither size nor SHA-256 known, a file whose format can be checked (archive, JSON) must pass that
    check: a download cut short and renamed into place by an older version is found here.
    """
    if not path.is_file():
        return "missing"
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size {actual_size} bytes, expected {size}"
    if sha256:
        actual = sha256_of(path)
        if actual != sha256.lower():
            return f"SHA-256 {actual}, expected {sha256.lower()}"
    elif size is None:
        kind = file_format(path)
        return format_problem(path, kind) if kind else None
    return None


# ------------------------------------------------------------------------- checking a file by its contents

ARCHIVE_NAME_FORMATS = (
    ((".zip",), "zip"),
    ((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz"), "tar"),
    ((".rar",), "rar"),
    ((".json",), "json"),
)
TAR_END_MARKER = b"\0" * 1024  # two zero blocks end every tar archive (POSIX)


def file_format(path: Path, name: str | None = None) -> str | None:
    """'zip', 'tar', 'rar' or 'json' when the contents of ``path`` can be checked for completeness, else None.

    Judged by ``name`` (default: the file's own name; a ``.part`` file passes its final name), then by the
    first bytes: PyTorch checkpoints are zip files whatever their extension.
    """
    kind = _format_by_name((name or path.name).lower()) or _format_by_magic(path)
    if kind == "rar" and find_rar_tool() is None:
        return None  # only the unpacking tool can read a rar listing
    return kind


def _format_by_name(lowered_name: str) -> str | None:
    for suffixes, kind in ARCHIVE_NAME_FORMATS:
        if lowered_name.endswith(suffixes):
            return kind
    return None


def _format_by_magic(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            head = f.read(265)
    except OSError:
        return None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head[257:262] == b"ustar":
        return "tar"
    return None


def _zip_problem(path: Path) -> str | None:
    with zipfile.ZipFile(path) as zf:  # reads the central directory at the very end of the file
        for info in zf.infolist():
            if info.header_offset + info.compress_size > zf.start_dir:
                return f"zip entry {info.filename!r} runs past the central directory"
    return None


def _tar_problem(path: Path) -> str | None:
    with tarfile.open(path, "r:*") as tf:
        tf.getmembers()  # every header, seeking past the data
        tf.fileobj.seek(tf.offset)
        end = tf.fileobj.read(len(TAR_END_MARKER))
        while tf.fileobj.read(CHUNK_SIZE):  # a compressed stream checks its own end (CRC, length) here
            pass
    return None if end == TAR_END_MARKER else "no end-of-archive marker after the last entry"


def format_problem(path: Path, kind: str) -> str | None:
    """Why ``path`` is not a complete file of format ``kind`` (see ``file_format``), or None when it is."""
    try:
        if kind == "zip":
            problem = _zip_problem(path)
        elif kind == "tar":
            problem = _tar_problem(path)
        elif kind == "rar":
            _rar_entries(find_rar_tool(), path)  # file_format says rar only when a tool is there
            problem = None
        else:
            json.loads(path.read_bytes())
            problem = None
    except DownloadError as exc:
        problem = str(exc).removeprefix(f"{path}: ")
    except (
        zipfile.BadZipFile,
        tarfile.TarError,
        EOFError,
        OSError,
        ValueError,
        zlib.error,
        lzma.LZMAError,
    ) as exc:
        problem = first_line(exc)
    return f"not a complete {kind} file ({problem})" if problem else None


def env_or(value: str | None, env_name: str, default: str | None = None) -> str | None:
    """A CLI flag wins over its environment variable, which wins over the default; empty counts as unset."""
    if value:
        return value
    return os.environ.get(env_name) or default


def mirror_url(mirror: str, relative_path: str) -> str:
    """``<mirror>/<relative_path>`` with the path quoted; the mirror may be an http(s) or file URL."""
    return mirror.rstrip("/") + "/" + urllib.parse.quote(relative_path)


def gdrive_url(file_id: str, template: str | None = None) -> str:
    template = env_or(template, GDRIVE_URL_ENV, DEFAULT_GDRIVE_URL)
    if "{id}" not in template:
        raise DownloadError(f"Google Drive URL template {template!r} has no {{id}} placeholder")
    return template.replace("{id}", urllib.parse.quote(file_id))


# ----------------------------------------------------------------------------------------- credentials


def kaggle_authorization() -> str:
    """The HTTP basic-auth header value for the Kaggle API, from the environment or ``kaggle.json``.

    The same places the official client reads: ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``, else
    ``$KAGGLE_CONFIG_DIR/kaggle.json`` or ``~/.kaggle/kaggle.json`` (``{"username": ..., "key": ...}``).
    """
    username, key = os.environ.get("KAGGLE_USERNAME"), os.environ.get("KAGGLE_KEY")
    config_dir = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle")
    token_file = config_dir / "kaggle.json"
    if not (username and key) and token_file.is_file():
        try:
            token = json.loads(token_file.read_text())
            username, key = token["username"], token["key"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DownloadError(
                f'{token_file}: not a Kaggle API token (expected {{"username": ..., "key": ...}}): {exc}'
            ) from exc
    if not (username and key):
        raise DownloadError(
            "Kaggle credentials not found: create an API token on https://www.kaggle.com/settings "
            f'("Create New Token") and save it as {token_file} (chmod 600), or set KAGGLE_USERNAME and '
            "KAGGLE_KEY; or download from Google Drive instead (--source gdrive)"
        )
    return "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode("ascii")


# --------------------------------------------------------------------------- Google Drive confirmation


class _ConfirmationPageParser(html.parser.HTMLParser):
    """Collects what Google Drive's large-file warning page offers: its download form, links, error text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.hrefs: list[str] = []
        self.error_text: list[str] = []
        self._in_form: dict | None = None
        self._in_error = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: (v or "") for k, v in attrs}
        if tag == "form":
            self._in_form = {
                "id": attributes.get("id", ""),
                "action": attributes.get("action", ""),
                "fields": {},
            }
            self.forms.append(self._in_form)
        elif tag == "input" and self._in_form is not None and attributes.get("type", "").lower() == "hidden":
            if attributes.get("name"):
                self._in_form["fields"][attributes["name"]] = attributes.get("value", "")
        elif tag == "a" and attributes.get("href"):
            self.hrefs.append(attributes["href"])
        if "uc-error-subcaption" in attributes.get("class", "").split():
            self._in_error += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = None
        elif self._in_error and tag in ("p", "div", "span"):
            self._in_error -= 1

    def handle_data(self, data: str) -> None:
        if self._in_error and data.strip():
            self.error_text.append(data.strip())


def gdrive_confirmation_url(page: str, page_url: str, cookies: Iterable = ()) -> str:
    """The URL Google Drive's "can't scan this file for viruses" page leads to, resolved against its own URL.

    Three forms have been served over the years, tried in this order: a ``<form id="download-form">``
    whose action plus hidden inputs (``id``, ``export``, ``confirm``, ``uuid``) make the download URL; a link
    carrying a ``confirm=`` token; and a ``download_warning*`` cookie whose value is the token to add as
    ``confirm=``.
    """
    parser = _ConfirmationPageParser()
    parser.feed(page)
    forms = sorted(parser.forms, key=lambda f: f["id"] != "download-form")
    for form in forms:
        if form["id"] == "download-form" or "confirm" in form["fields"]:
            action = urllib.parse.urljoin(page_url, form["action"] or page_url)
            parts = urllib.parse.urlsplit(action)
            query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            query = [(k, v) for k, v in query if k not in form["fields"]] + list(form["fields"].items())
            return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    for href in parser.hrefs:
        if "confirm=" in href:
            return urllib.parse.urljoin(page_url, href)
    if parser.error_text:  # quota exceeded, file deleted, not shared
        raise DownloadError(f"Google Drive refused the download: {' '.join(parser.error_text)}")
    for cookie in cookies:
        if cookie.name.startswith("download_warning"):
            parts = urllib.parse.urlsplit(page_url)
            query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "confirm"]
            query.append(("confirm", cookie.value))
            return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    raise DownloadError(
        "Google Drive answered with a page that has no download link (the file may not be shared with "
        "'anyone with the link', or its download quota is exhausted; try again later or use a browser)"
    )


# -------------------------------------------------------------------------------------------- download


def _looks_like_html(first_bytes: bytes) -> bool:
    head = first_bytes[:512].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def _write_chunk(f, chunk: bytes) -> None:
    """Write one chunk; a seam so tests can simulate a full disk."""
    f.write(chunk)


def _is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


def _lock_exclusively(f, part: Path) -> None:
    """Refuse a partial file another process is writing (two concurrent runs would interleave bytes)."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent runs are the user's responsibility
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise LocalProblemError(
            f"{part}: another download is writing this file; wait for it or stop it"
        ) from exc


class _PartialFile:
    """``<name>.part`` with a running SHA-256 of its bytes, so a resumed download is hashed once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.length = 0
        self.file = open(path, "ab")  # noqa: SIM115 - closed by close()
        try:
            _lock_exclusively(self.file, path)
        except LocalProblemError:
            self.file.close()
            raise
        if self.file.tell():
            with open(path, "rb") as existing:
                while chunk := existing.read(CHUNK_SIZE):
                    self.digest.update(chunk)
                    self.length += len(chunk)

    def truncate(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.digest = hashlib.sha256()
        self.length = 0

    def append(self, chunk: bytes) -> None:
        try:
            _write_chunk(self.file, chunk)
        except OSError as exc:
            if _is_disk_full(exc):
                free = shutil.disk_usage(self.path.parent).free
                raise LocalProblemError(
                    f"{self.path}: no space left on device after {human_size(self.length)} "
                    f"({human_size(free)} free); free some space and run again to resume"
                ) from exc
            raise LocalProblemError(f"{self.path}: cannot write: {exc.strerror or exc}") from exc
        self.digest.update(chunk)
        self.length += len(chunk)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()


@dataclass
class _Transfer:
    """Settings of one ``download`` call, shared by its attempts."""

    label: str
    binary: bool
    size: int | None
    sha256: str | None
    timeout: float
    progress: bool
    log: Callable[[str], None]
    opener: urllib.request.OpenerDirector


def _open(transfer: _Transfer, source: Source, url: str, offset: int):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")  # kept across redirects
    if source.authorization and urllib.parse.urlsplit(url).netloc == urllib.parse.urlsplit(source.url).netloc:
        request.add_unredirected_header("Authorization", source.authorization)  # dropped on redirect
    return transfer.opener.open(request, timeout=transfer.timeout)


def _http_error_message(label: str, url: str, code: int, reason: str) -> str:
    hint = {
        401: "the server wants credentials (check them)",
        403: "access denied (credentials, licence terms not accepted, or the link expired)",
        404: "not found (the file moved or the URL/mirror is wrong)",
        416: "the server refused the byte range",
    }.get(code, "")
    return f"{label}: HTTP {code} {reason} from {url}" + (f" - {hint}" if hint else "")


def _expected_total(response, offset: int) -> int | None:
    if response.status == 206:
        match = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise _RestartFromZero(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
        return int(match.group(3)) if match.group(3) != "*" else int(match.group(2)) + 1
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _total_from_refused_range(exc: urllib.error.HTTPError) -> int | None:
    """The file's length from a 416 answer's ``Content-Range: bytes */N``, when the server sent one."""
    header = exc.headers.get("Content-Range", "") if exc.headers else ""
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", header)
    return int(match.group(1)) if match else None


def _check_disk_space(part: Path, needed: int) -> None:
    free = shutil.disk_usage(part.parent).free
    if needed > free:
        raise LocalProblemError(
            f"{part.parent}: not enough disk space for {part.name[: -len('.part')]}: needs "
            f"{human_size(needed)} more, {human_size(free)} free"
        )


def _attempt(transfer: _Transfer, source: Source, part: _PartialFile) -> None:
    """One request (plus Google Drive confirmation pages) appending to ``part``; raises on any failure."""
    url = source.url
    offset = part.length
    if transfer.size is not None and offset == transfer.size:
        return  # a complete partial file from an earlier run: nothing left to fetch
    if transfer.size is not None and offset > transfer.size:
        part.truncate()
        offset = 0
    for _ in range(MAX_CONFIRMATION_PAGES + 1):
        try:
            response = _open(transfer, source, url, offset)
        except urllib.error.HTTPError as exc:
            exc.close()
            if exc.code == 416 and offset:
                if _total_from_refused_range(exc) != offset:
                    raise _RestartFromZero("the server refused to resume (HTTP 416)") from exc
                _finish_attempt(transfer, part, confirmed=True)  # nothing after our last byte: it is all here
                return
            message = _http_error_message(transfer.label, url, exc.code, exc.reason)
            raise (_Retryable(message) if exc.code in RETRYABLE_HTTP else DownloadError(message)) from exc
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            if isinstance(reason, ssl.SSLCertVerificationError):  # retrying will not fix a certificate
                raise DownloadError(f"{transfer.label}: TLS certificate of {url} rejected: {reason}") from exc
            raise _Retryable(f"{transfer.label}: cannot reach {url}: {reason}") from exc
        with response:
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if transfer.binary and content_type in ("text/html", "application/xhtml+xml"):
                page = response.read(2_000_000).decode("utf-8", "replace")
                if source.google_drive:
                    cookies = getattr(transfer.opener, "cookiejar", ())
                    url = gdrive_confirmation_url(page, response.geturl(), cookies)
                    continue
                raise DownloadError(
                    f"{transfer.label}: expected a binary file but {url} sent an HTML page "
                    "(a login, error or consent page?); nothing was saved"
                )
            if offset and response.status != 206:
                transfer.log(f"{transfer.label}: the server does not support resuming; starting over")
                part.truncate()
                offset = 0
            total = _expected_total(response, offset)
            if total is not None:
                if transfer.size is not None and total != transfer.size:
                    raise DownloadError(
                        f"{transfer.label}: {url} offers {total} bytes, expected {transfer.size}; wrong file"
                    )
                _check_disk_space(part.path, total - offset)
            _stream(transfer, response, part, offset, total, url)
            _finish_attempt(transfer, part, confirmed=total is not None)
            return
    raise DownloadError(f"{transfer.label}: Google Drive kept answering with confirmation pages; giving up")


def _stream(
    transfer: _Transfer, response, part: _PartialFile, offset: int, total: int | None, url: str
) -> None:
    bar = tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=transfer.label,
        disable=None if transfer.progress else True,
        leave=False,
    )
    try:
        first = offset == 0
        while True:
            try:
                chunk = response.read(CHUNK_SIZE)
            except (http.client.HTTPException, OSError) as exc:
                raise _Retryable(
                    f"{transfer.label}: connection lost after {human_size(part.length)}: {exc}"
                ) from exc
            if not chunk:
                break
            if first and transfer.binary and _looks_like_html(chunk):
                part.truncate()
                raise DownloadError(
                    f"{transfer.label}: expected a binary file but {url} sent an HTML page; nothing was saved"
                )
            first = False
            part.append(chunk)
            bar.update(len(chunk))
    finally:
        bar.close()
    if total is not None and part.length < total:
        raise _Retryable(
            f"{transfer.label}: connection closed after {human_size(part.length)} of {human_size(total)}"
        )


def _finish_attempt(transfer: _Transfer, part: _PartialFile, confirmed: bool) -> None:
    """Return when ``part`` holds the whole file as far as can be known; raise ``_Retryable`` to ask for the
    rest. ``confirmed``: the server announced the file's length and all of it is here.

    Without an announced length, a connection cut at any byte looks like the end of the file. Then a known
    size or SHA-256 decides, else a check of the contents (``file_format``); failing both, the next attempt
    asks for the bytes after the end, and the server either sends them or confirms the end (HTTP 416).
    """
    part.file.flush()
    label, size, sha256 = transfer.label, transfer.size, transfer.sha256
    if size is not None:
        if part.length >= size:
            return  # download() compares the size and SHA-256
        message = f"{label}: the server's file ends after {part.length} bytes, expected {size}"
        raise DownloadError(message + "; wrong file") if confirmed else _Retryable(message)
    if sha256:
        if confirmed or part.digest.hexdigest() == sha256.lower():
            return  # download() compares the SHA-256
        raise _Retryable(
            f"{label}: the server sent no length and the SHA-256 does not match yet; asking for more"
        )
    kind = file_format(part.path, label)
    problem = format_problem(part.path, kind) if kind else None
    if problem and confirmed:
        raise VerificationError(
            f"{part.path}: {problem}, although the server sent the whole file ({part.length} bytes): the "
            "copy at the source is damaged",
            part.path,
        )
    if confirmed or (kind and not problem):
        return
    found = f"the file is incomplete ({problem})" if problem else "its contents cannot be checked"
    raise _Retryable(f"{label}: the server sent no length and {found}; asking for the rest")


def _fetch_with_retries(
    transfer: _Transfer, source: Source, part: _PartialFile, retries: int, backoff: float
) -> None:
    failures = 0
    while True:
        length_before = part.length
        try:
            _attempt(transfer, source, part)
            return
        except _RestartFromZero as exc:
            transfer.log(f"{transfer.label}: {exc}; starting over")
            part.truncate()
            failures += 1
            last = str(exc)
        except _Retryable as exc:
            # a cut connection that delivered bytes is progress, not a failure in a row
            failures = 0 if part.length > length_before else failures + 1
            last = str(exc)
        if failures > retries:
            raise DownloadError(f"{last} (gave up after {retries} retries)")
        delay = min(backoff * 2 ** max(failures - 1, 0), MAX_BACKOFF_S)
        transfer.log(f"{last}; retrying in {delay:.3g} s")
        time.sleep(delay)


def already_complete(
    dest: Path, sha256: str | None = None, size: int | None = None, log: Callable[[str], None] = print
) -> bool:
    """Whether ``dest`` is in place and complete (``verification_problem``); says so, or why not.

    An incomplete file with neither size nor SHA-256 known is the start of a cut-short download (older
    versions renamed those into place): it is moved back to ``<name>.part`` so that the download resumes it.
    """
    if not dest.exists():
        return False
    problem = verification_problem(dest, sha256, size)
    if problem is None:
        if sha256 or size is not None:
            log(f"{dest}: already present and verified")
        else:
            kind = file_format(dest)
            log(
                f"{dest}: already present"
                + (f" (a complete {kind} file)" if kind else " (nothing to verify it by)")
            )
        return True
    part_path = dest.with_name(dest.name + ".part")
    if sha256 is None and size is None and not part_path.exists():
        os.replace(dest, part_path)
        log(f"{dest}: {problem}; resuming it as {part_path.name}")
    else:
        log(f"{dest}: {problem}; downloading it again")
    return False


SourceList = str | Source | Sequence[str | Source]


def download(
    sources: SourceList | Callable[[], SourceList],
    dest: str | Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    binary: bool = True,
    retries: int = 5,
    backoff: float = 2.0,
    timeout: float = 60.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_downloaded: Callable[[Path, int, str], None] | None = None,
) -> Path:
    """Fetch ``dest`` from the first source that delivers the expected file; return ``dest``.

    A complete file already at ``dest`` (``already_complete``) is kept and no request is made; ``sources``
    may be a function, called only then (finding a source can itself be a request). Otherwise bytes go to
    ``dest.part`` (resumed if present) until the file is complete (see the module docstring) and verified,
    then ``dest.part`` is renamed onto ``dest``. A file of the wrong size or SHA-256 is deleted, never put in
    place; a damaged one is kept as ``dest.part`` and named in the ``VerificationError``.
    ``on_downloaded(dest, size, sha256)`` is called after a download (not for a file already in place).
    """
    dest = Path(dest)
    if already_complete(dest, sha256, size, log):
        return dest
    sources = _as_sources(sources() if callable(sources) else sources)
    if not sources:
        raise DownloadError(f"{dest.name}: no download source is known")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part_path = dest.with_name(dest.name + ".part")
    transfer = _Transfer(dest.name, binary, size, sha256, timeout, progress, log, _cookie_opener())
    errors: list[DownloadError] = []
    for index, source in enumerate(sources):
        log(f"{dest.name}: downloading from {source.url}")
        part = _PartialFile(part_path)
        if index:  # bytes from another server are not resumed: the two copies might differ
            part.truncate()
        try:
            _fetch_with_retries(transfer, source, part, retries, backoff)
        except LocalProblemError:
            raise
        except DownloadError as exc:
            errors.append(exc)
            continue
        finally:
            part.close()
        problem = _size_or_hash_problem(part, size, sha256)
        if problem:
            part_path.unlink(missing_ok=True)
            errors.append(
                VerificationError(
                    f"{dest.name}: downloaded file from {source.url} is not the expected one ({problem}); deleted"
                )
            )
            continue
        os.replace(part_path, dest)
        checked = "verified" if sha256 else "not verified: no SHA-256 known"
        log(f"{dest}: done ({human_size(part.length)}, SHA-256 {part.digest.hexdigest()}, {checked})")
        if on_downloaded is not None:
            on_downloaded(dest, part.length, part.digest.hexdigest())
        return dest
    if part_path.exists() and part_path.stat().st_size == 0:
        part_path.unlink()  # nothing worth resuming
    raise _combined_error(dest.name, errors)


def _as_sources(sources: SourceList) -> list[Source]:
    if isinstance(sources, (str, Source)):
        sources = [sources]
    return [s if isinstance(s, Source) else Source(s) for s in sources]


def _cookie_opener() -> urllib.request.OpenerDirector:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.cookiejar = jar  # read back for Google Drive's download_warning cookie
    return opener


def _size_or_hash_problem(part: _PartialFile, size: int | None, sha256: str | None) -> str | None:
    if size is not None and part.length != size:
        return f"size {part.length} bytes, expected {size}"
    if sha256 and part.digest.hexdigest() != sha256.lower():
        return f"SHA-256 {part.digest.hexdigest()}, expected {sha256.lower()}"
    return None


def _combined_error(label: str, errors: list[DownloadError]) -> DownloadError:
    """One error for every source's failure; a verification failure stays one, naming the file it kept."""
    last = errors[-1]
    message = (
        str(last) if len(errors) == 1 else f"{label}: every source failed: " + " | ".join(map(str, errors))
    )
    if isinstance(last, VerificationError):
        kept = last.path if last.path is not None and last.path.exists() else None
        return VerificationError(message, kept)
    return DownloadError(message)


def elsewhere_hint(dest: Path, mirror_name: str, page: str) -> str:
    """One line for a file that could not be fetched: run again, a mirror, or a download by hand."""
    part = dest.with_name(dest.name + ".part")
    partial = part.is_file() and part.stat().st_size > 0
    again = (
        f"run again to resume the {human_size(part.stat().st_size)} in {part}"
        if partial
        else "run again later"
    )
    return (
        f"{dest}: not downloaded; {again}, or fetch it from a mirror with --mirror URL (or {MIRROR_ENV}=URL) "
        f"serving URL/{mirror_name}, or download it by hand from {page} and save it as {dest}"
    )


def refetch_hint(exc: VerificationError, command: str) -> str:
    """``exc``'s message with the shell command that deletes the file it names and fetches it again."""
    if exc.path is None:
        return f"{exc}; fetch it again with: {command}"
    return f"{exc}; delete it and fetch it again: rm -- {shlex.quote(str(exc.path))} && {command}"


# ------------------------------------------------------------------------------------------- unpacking


def archive_kind(path: str | Path) -> str:
    """'zip', 'tar' or 'rar', from the file's first bytes (names lie: Kaggle's zips have no extension)."""
    path = Path(path)
    with open(path, "rb") as f:
        magic = f.read(8)
    if magic.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    with open(path, "rb") as f:
        head = f.read(512)
    if _looks_like_html(head):
        raise VerificationError(f"{path}: is an HTML page, not an archive (the download went wrong)", path)
    raise VerificationError(f"{path}: not a zip, tar or rar archive", path)


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    """The path components of an archive entry, or UnsafeArchiveError if it could land outside the target."""
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise UnsafeArchiveError(f"{archive}: refusing to unpack: entry {name!r} has an absolute path")
    parts = tuple(p for p in PurePosixPath(unified).parts if p not in ("", "."))
    if ".." in parts:
        raise UnsafeArchiveError(
            f"{archive}: refusing to unpack: entry {name!r} points outside the target (..)"
        )
    if "\x00" in name:
        raise UnsafeArchiveError(f"{archive}: refusing to unpack: entry {name!r} contains a NUL byte")
    return parts


def _inside(root: Path, parts: tuple[str, ...], archive: Path, name: str) -> Path:
    dest = root.joinpath(*parts)
    if not dest.resolve().is_relative_to(root):
        raise UnsafeArchiveError(f"{archive}: refusing to unpack: entry {name!r} resolves outside {root}")
    return dest


def _check_room_to_unpack(archive: Path, target: Path, needed: int) -> None:
    existing = next(p for p in (target, *target.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise LocalProblemError(
            f"{target}: not enough disk space to unpack {archive.name}: needs {human_size(needed)}, "
            f"{human_size(free)} free"
        )


def _extract_zip(archive: Path, target: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        plan = []
        for info in infos:  # check everything before writing anything
            parts = _safe_parts(info.filename, archive)
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_ISLNK(mode):
                raise UnsafeArchiveError(
                    f"{archive}: refusing to unpack: entry {info.filename!r} is a symlink"
                )
            if parts:
                plan.append((info, parts))
        _check_room_to_unpack(archive, target, sum(info.file_size for info, _ in plan))
        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        for info, parts in plan:
            dest = _inside(root, parts, archive, info.filename)
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK_SIZE)
        return len(plan)


def _extract_tar(archive: Path, target: Path) -> int:
    with tarfile.open(archive, "r:*") as tf:
        members = tf.getmembers()
        for member in members:
            _safe_parts(member.name, archive)
            if member.issym() or member.islnk():
                kind = "symlink" if member.issym() else "hard link"
                raise UnsafeArchiveError(
                    f"{archive}: refusing to unpack: entry {member.name!r} is a {kind} "
                    f"(to {member.linkname!r})"
                )
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(
                    f"{archive}: refusing to unpack: entry {member.name!r} is a special file"
                )
        _check_room_to_unpack(archive, target, sum(m.size for m in members))
        target.mkdir(parents=True, exist_ok=True)
        root = target.resolve()
        for member in members:
            _inside(root, _safe_parts(member.name, archive), archive, member.name)
        if hasattr(
            tarfile, "data_filter"
        ):  # Python >= 3.11.4 / 3.12: the library's own guard as a second line
            tf.extractall(root, members=members, filter="data")
        else:
            tf.extractall(root, members=members)  # noqa: S202 - every member was checked above
        return len(members)


# Tools that can unpack RAR archives, in order of preference, with how to list and extract with each.
RAR_TOOLS = ("bsdtar", "unrar", "7z", "7zz")
RAR_HELP = (
    "unpacking a RAR archive needs one of these on PATH: bsdtar (package libarchive-tools / libarchive), "
    "unrar (package unrar, non-free) or 7z/7zz (package 7zip or p7zip-full)"
)


def find_rar_tool() -> str | None:
    for tool in RAR_TOOLS:
        if shutil.which(tool):
            return tool
    return None


def _run_tool(args: list[str], archive: Path) -> str:
    try:
        result = subprocess.run(args, capture_output=True, text=True, errors="replace", check=False)
    except OSError as exc:
        raise DownloadError(f"{archive}: cannot run {args[0]}: {exc}") from exc
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()
        raise DownloadError(
            f"{archive}: {args[0]} failed (exit {result.returncode}): {last[-1] if last else ''}"
        )
    return result.stdout


def _rar_entries(tool: str, archive: Path) -> list[tuple[str, bool]]:
    """(name, is_link) for every entry, read from the tool's listing."""
    if tool == "bsdtar":
        names = _run_tool([tool, "-tf", str(archive)], archive).splitlines()
        verbose = _run_tool([tool, "-tvf", str(archive)], archive).splitlines()
        if len(verbose) != len(names):
            raise DownloadError(f"{archive}: cannot read the archive listing from bsdtar")
        return [(n, v[:1] in ("l", "h") or " link to " in v) for n, v in zip(names, verbose)]
    if tool == "unrar":
        entries, name = [], None
        for line in _run_tool([tool, "lt", "-c-", str(archive)], archive).splitlines():
            key, _, value = line.strip().partition(": ")
            if key == "Name":
                name = value
            elif key == "Type" and name is not None:
                entries.append((name, "link" in value.lower()))
                name = None
        return entries
    entries, name = [], None  # 7z / 7zz technical listing: blocks of "Key = value"
    for line in _run_tool([tool, "l", "-slt", "-ba", str(archive)], archive).splitlines():
        key, _, value = line.partition(" = ")
        if key == "Path":
            if name is not None:
                entries.append((name, False))
            name = value
        elif key == "Symbolic Link" and value and name is not None:
            entries.append((name, True))
            name = None
    if name is not None:
        entries.append((name, False))
    return entries


def _extract_rar(archive: Path, target: Path) -> int:
    tool = find_rar_tool()
    if tool is None:
        raise DownloadError(f"{archive}: {RAR_HELP}")
    entries = _rar_entries(tool, archive)
    for name, is_link in entries:
        _safe_parts(name, archive)
        if is_link:
            raise UnsafeArchiveError(f"{archive}: refusing to unpack: entry {name!r} is a link")
    target.mkdir(parents=True, exist_ok=True)
    command = {
        "bsdtar": [tool, "-xf", str(archive), "-C", str(target)],
        "unrar": [tool, "x", "-o+", "-idq", "-y", str(archive), str(target) + os.sep],
    }.get(tool, [tool, "x", "-y", f"-o{target}", str(archive)])
    _run_tool(command, archive)
    # the listing cannot show everything every tool does: check what actually landed
    for path in target.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise UnsafeArchiveError(
                f"{archive}: refusing the unpacked result: {path} is a link or special file"
            )
    return len(entries)


def safe_extract(archive: str | Path, target: str | Path, *, log: Callable[[str], None] = print) -> int:
    """Unpack a zip, tar or rar archive into ``target``; return the number of entries.

    Every entry is checked first: absolute paths, ``..``, symlinks, hard links and special files make it raise
    ``UnsafeArchiveError`` before anything is written. A full disk is a one-line ``DownloadError``.
    """
    archive, target = Path(archive), Path(target)
    kind = archive_kind(archive)
    log(f"{archive}: unpacking ({kind}) into {target}")
    try:
        extract = {"zip": _extract_zip, "tar": _extract_tar, "rar": _extract_rar}[kind]
        return extract(archive, target)
    except OSError as exc:
        if _is_disk_full(exc):
            raise DownloadError(f"{target}: no space left on device while unpacking {archive.name}") from exc
        raise DownloadError(f"{archive}: cannot unpack: {exc}") from exc
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise VerificationError(f"{archive}: damaged archive: {first_line(exc)}", archive) from exc


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def find_folder_containing(root: Path, marker: str, max_depth: int = 3) -> Path | None:
    """The shallowest folder under ``root`` (``root`` included) holding a child named ``marker``."""
    level = [root]
    for _ in range(max_depth + 1):
        for folder in level:
            if (folder / marker).is_dir():
                return folder
        level = [child for folder in level for child in sorted(folder.iterdir()) if child.is_dir()]
    return None
