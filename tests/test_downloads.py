"""download_utils, download_weights.py, download_dataset.py against a local HTTP server (never the internet).

Every test starts an http.server on 127.0.0.1 in a thread and serves bytes the test made. Routes can cut the
connection half-way, ignore Range, answer 404/500, send HTML, or act like Google Drive and Kaggle.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from local_server import serve_bytes

import antispoof.download as download_utils
import download_dataset
import download_weights
from antispoof.download import DownloadError, Source, UnsafeArchiveError, download, safe_extract

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST = dict(retries=3, backoff=0.001, progress=False)  # tiny backoff keeps the retry tests quick


@pytest.fixture
def payload():
    return np.random.default_rng(0).bytes(300_000)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def quiet_log():
    lines = []
    return lines, lines.append


# ------------------------------------------------------------------------------------------ download()


def test_full_download_verified_and_second_run_is_a_no_op(server, payload, tmp_path):
    server.file("/w.bin", payload)
    dest = tmp_path / "w.bin"
    lines, log = quiet_log()
    download(f"{server.url}/w.bin", dest, sha256=sha(payload), size=len(payload), log=log, **FAST)
    assert dest.read_bytes() == payload
    assert not (tmp_path / "w.bin.part").exists()
    assert len(server.requests) == 1 and "Range" not in server.requests[0][1]

    download(f"{server.url}/w.bin", dest, sha256=sha(payload), size=len(payload), log=log, **FAST)
    assert len(server.requests) == 1  # verified file in place: no request at all
    assert "already present and verified" in lines[-1]


def test_cut_connection_is_resumed_with_range(server, payload, tmp_path):
    server.routes["/w.bin"] = lambda h, q, n: serve_bytes(h, payload, cut=(n == 0))
    dest = tmp_path / "w.bin"
    download(f"{server.url}/w.bin", dest, sha256=sha(payload), log=quiet_log()[1], **FAST)
    assert dest.read_bytes() == payload
    first, second = server.hits("/w.bin")
    assert "Range" not in first
    assert second["Range"] == f"bytes={len(payload) // 2}-"


def test_server_without_range_support_starts_over(server, payload, tmp_path):
    server.routes["/w.bin"] = lambda h, q, n: serve_bytes(h, payload, ranges=False, cut=(n == 0))
    dest = tmp_path / "w.bin"
    lines, log = quiet_log()
    download(f"{server.url}/w.bin", dest, sha256=sha(payload), log=log, **FAST)
    assert dest.read_bytes() == payload  # not the first half twice
    assert server.hits("/w.bin")[1]["Range"] == f"bytes={len(payload) // 2}-"
    assert any("does not support resuming; starting over" in line for line in lines)


def test_partial_file_from_an_earlier_run_is_resumed(server, payload, tmp_path):
    server.file("/w.bin", payload)
    (tmp_path / "w.bin.part").write_bytes(payload[:1000])
    download(f"{server.url}/w.bin", tmp_path / "w.bin", sha256=sha(payload), log=quiet_log()[1], **FAST)
    assert (tmp_path / "w.bin").read_bytes() == payload
    assert server.requests[0][1]["Range"] == "bytes=1000-"


def test_checksum_mismatch_is_refused_and_nothing_left_at_the_target(server, payload, tmp_path):
    server.file("/w.bin", payload)
    dest = tmp_path / "w.bin"
    with pytest.raises(
        DownloadError, match=r"w\.bin: .*not the expected one \(SHA-256 [0-9a-f]{64}, expected 0+\)"
    ):
        download(f"{server.url}/w.bin", dest, sha256="0" * 64, log=quiet_log()[1], **FAST)
    assert not dest.exists() and not (tmp_path / "w.bin.part").exists()


def test_wrong_size_is_refused_before_downloading(server, payload, tmp_path):
    server.file("/w.bin", payload)
    with pytest.raises(DownloadError, match=f"offers {len(payload)} bytes, expected 123"):
        download(f"{server.url}/w.bin", tmp_path / "w.bin", size=123, log=quiet_log()[1], **FAST)
    assert not (tmp_path / "w.bin").exists()


def test_bad_existing_file_is_replaced(server, payload, tmp_path):
    server.file("/w.bin", payload)
    dest = tmp_path / "w.bin"
    dest.write_bytes(b"corrupt")
    lines, log = quiet_log()
    download(f"{server.url}/w.bin", dest, sha256=sha(payload), log=log, **FAST)
    assert dest.read_bytes() == payload
    assert "downloading it again" in lines[0]


def test_404_is_one_clear_error_without_retries(server, tmp_path):
    with pytest.raises(
        DownloadError, match=r"^gone\.bin: HTTP 404 Not Found from http://127\.0\.0\.1:\d+/gone\.bin"
    ):
        download(f"{server.url}/gone.bin", tmp_path / "gone.bin", log=quiet_log()[1], **FAST)
    assert len(server.requests) == 1
    assert list(tmp_path.iterdir()) == []  # not even an empty .part


def test_500_is_retried_then_reported(server, tmp_path):
    server.routes["/w.bin"] = lambda h, q, n: h.send_error(500, "Internal Server Error")
    with pytest.raises(DownloadError, match=r"HTTP 500 .*gave up after 3 retries"):
        download(f"{server.url}/w.bin", tmp_path / "w.bin", log=quiet_log()[1], **FAST)
    assert len(server.requests) == 4  # the first try and three retries
    assert not (tmp_path / "w.bin").exists()


def test_transient_500_then_success(server, payload, tmp_path):
    def flaky(h, q, n):
        if n < 2:
            h.send_error(503, "Service Unavailable")
        else:
            serve_bytes(h, payload)

    server.routes["/w.bin"] = flaky
    download(f"{server.url}/w.bin", tmp_path / "w.bin", sha256=sha(payload), log=quiet_log()[1], **FAST)
    assert (tmp_path / "w.bin").read_bytes() == payload and len(server.requests) == 3


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/octet-stream"])
def test_html_page_instead_of_binary_is_refused(server, tmp_path, content_type):
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    server.file("/w.pth", page, content_type=content_type)
    with pytest.raises(DownloadError, match=r"w\.pth: expected a binary file but .* sent an HTML page"):
        download(f"{server.url}/w.pth", tmp_path / "w.pth", log=quiet_log()[1], **FAST)
    assert list(tmp_path.iterdir()) == []


def test_text_file_may_be_html_like_when_not_binary(server, tmp_path):
    server.file("/config.json", b'{"a": 1}', content_type="application/json")
    download(f"{server.url}/config.json", tmp_path / "config.json", binary=False, log=quiet_log()[1], **FAST)
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}


def test_second_source_used_when_first_fails(server, payload, tmp_path):
    server.file("/good.bin", payload)
    sources = [f"{server.url}/missing.bin", f"{server.url}/good.bin"]
    download(sources, tmp_path / "w.bin", sha256=sha(payload), log=quiet_log()[1], **FAST)
    assert (tmp_path / "w.bin").read_bytes() == payload


def test_not_enough_disk_space_is_reported_before_writing(server, payload, tmp_path, monkeypatch):
    server.file("/w.bin", payload)
    usage = download_utils.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(download_utils.shutil, "disk_usage", lambda p: usage._replace(free=1000))
    with pytest.raises(
        DownloadError, match=r"not enough disk space for w\.bin: needs 293\.0 KiB more, 1000 B free"
    ):
        download(f"{server.url}/w.bin", tmp_path / "w.bin", log=quiet_log()[1], **FAST)


def test_disk_full_while_writing_is_one_clear_error(server, payload, tmp_path, monkeypatch):
    server.file("/w.bin", payload)

    def full(f, chunk):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download_utils, "_write_chunk", full)
    with pytest.raises(DownloadError, match=r"w\.bin\.part: no space left on device .* run again to resume"):
        download(f"{server.url}/w.bin", tmp_path / "w.bin", log=quiet_log()[1], **FAST)
    assert len(server.requests) == 1  # not retried: another attempt would hit the same full disk
    assert not (tmp_path / "w.bin").exists()


# ------------------------------------------------------------- no known size or SHA-256, no Content-Length


@pytest.fixture
def zip_payload(tmp_path):
    """A real zip archive of about 300 KB (incompressible members), as bytes."""
    rng = np.random.default_rng(1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for i in range(3):
            zf.writestr(f"LA/part{i}.bin", rng.bytes(100_000))
    return buffer.getvalue()


def first_run_then_down(body, **kwargs):
    """A route: the first answer per ``kwargs`` (e.g. cut, no length), then 503 (the first run gives up),
    then, for the next run, the whole file with Range support."""

    def route(h, q, n):
        if n == 0:
            serve_bytes(h, body, **kwargs)
        elif n == 1:
            h.send_error(503, "Service Unavailable")
        else:
            serve_bytes(h, body)

    return route


def test_cut_response_without_content_length_stays_partial_and_next_run_completes_it(
    server, zip_payload, tmp_path
):
    # the first answer has no length and is cut half-way: to the client it looks like a complete response
    server.routes["/LA.zip"] = first_run_then_down(zip_payload, length=False, cut=True)
    dest = tmp_path / "LA.zip"
    lines, log = quiet_log()
    with pytest.raises(DownloadError, match=r"HTTP 503"):
        download(f"{server.url}/LA.zip", dest, log=log, retries=0, backoff=0.001, progress=False)
    assert any("LA.zip: the server sent no length and the file is incomplete" in line for line in lines)
    assert not dest.exists()  # not renamed into place
    assert (tmp_path / "LA.zip.part").read_bytes() == zip_payload[: len(zip_payload) // 2]

    download(f"{server.url}/LA.zip", dest, log=log, **FAST)  # the next run resumes it
    assert dest.read_bytes() == zip_payload and not (tmp_path / "LA.zip.part").exists()
    assert server.hits("/LA.zip")[2]["Range"] == f"bytes={len(zip_payload) // 2}-"
    assert "not verified: no SHA-256 known" in lines[-1] and sha(zip_payload) in lines[-1]
    download(f"{server.url}/LA.zip", dest, log=log, **FAST)
    assert lines[-1] == f"{dest}: already present (a complete zip file)" and len(server.requests) == 3


def test_cut_response_without_content_length_is_resumed_in_the_same_run(server, zip_payload, tmp_path):
    server.routes["/LA.zip"] = lambda h, q, n: serve_bytes(h, zip_payload, length=False, cut=(n == 0))
    download(f"{server.url}/LA.zip", tmp_path / "LA.zip", log=quiet_log()[1], **FAST)
    assert (tmp_path / "LA.zip").read_bytes() == zip_payload and len(server.requests) == 2


def test_complete_archive_without_content_length_is_accepted_by_its_listing(server, zip_payload, tmp_path):
    server.file("/LA.zip", zip_payload, length=False)
    download(f"{server.url}/LA.zip", tmp_path / "LA.zip", log=quiet_log()[1], **FAST)
    assert (tmp_path / "LA.zip").read_bytes() == zip_payload
    assert len(server.requests) == 1  # the central directory checked out: no second request


def test_file_without_length_or_checkable_format_is_complete_once_the_server_confirms_its_end(
    server, payload, tmp_path
):
    server.file("/w.bin", payload, length=False)
    dest = tmp_path / "w.bin"
    lines, log = quiet_log()
    download(f"{server.url}/w.bin", dest, log=log, **FAST)
    assert dest.read_bytes() == payload
    assert any("the server sent no length and its contents cannot be checked" in line for line in lines)
    assert server.hits("/w.bin")[1]["Range"] == f"bytes={len(payload)}-" and len(server.requests) == 2


def test_unconfirmed_file_stays_partial_and_the_next_run_confirms_it(server, payload, tmp_path):
    server.routes["/w.bin"] = first_run_then_down(payload, length=False)
    dest = tmp_path / "w.bin"
    with pytest.raises(DownloadError, match=r"HTTP 503"):
        download(f"{server.url}/w.bin", dest, log=quiet_log()[1], retries=0, backoff=0.001, progress=False)
    assert not dest.exists() and (tmp_path / "w.bin.part").read_bytes() == payload
    download(f"{server.url}/w.bin", dest, log=quiet_log()[1], **FAST)  # "416: it ends there"
    assert dest.read_bytes() == payload and server.hits("/w.bin")[2]["Range"] == f"bytes={len(payload)}-"
    assert len(server.requests) == 3  # no byte fetched twice


def test_file_without_length_from_a_server_without_ranges_is_never_accepted(server, payload, tmp_path):
    server.file("/w.bin", payload, length=False, ranges=False)
    with pytest.raises(
        DownloadError, match=r"contents cannot be checked; asking for the rest \(gave up after"
    ):
        download(f"{server.url}/w.bin", tmp_path / "w.bin", log=quiet_log()[1], **FAST)
    assert not (tmp_path / "w.bin").exists() and (tmp_path / "w.bin.part").exists()


def test_damaged_archive_is_not_accepted_and_named_with_its_path(server, zip_payload, tmp_path):
    damaged = bytearray(zip_payload)
    damaged[-30:-20] = b"\xff" * 10  # the end-of-central-directory record
    server.file("/LA.zip", bytes(damaged), length=False)
    dest = tmp_path / "LA.zip"
    with pytest.raises(
        download_utils.VerificationError,
        match=r"LA\.zip\.part: not a complete zip file \(.*\), although the server sent the whole file",
    ) as caught:
        download(f"{server.url}/LA.zip", dest, log=quiet_log()[1], **FAST)
    assert caught.value.path == tmp_path / "LA.zip.part" and caught.value.path.exists()
    assert not dest.exists()
    hint = download_utils.refetch_hint(caught.value, "python download_dataset.py --dataset LA")
    assert hint.endswith(
        f"delete it and fetch it again: rm -- {caught.value.path} && python download_dataset.py --dataset LA"
    )


@pytest.mark.parametrize("suffix", [".zip", ".tar", ".tar.gz", ".tar.xz", ".tar.bz2", ".json"])
def test_format_check_finds_every_cut(tmp_path, suffix):
    source = tmp_path / ("whole" + suffix)
    if suffix == ".json":
        source.write_text(json.dumps({"a": list(range(200))}))
    elif suffix == ".zip":
        make_zip(source, ["LA/a.txt", "LA/b.txt"])
    else:
        members = [tar_file(f"f{i}", np.random.default_rng(i).bytes(3000)) for i in range(3)]
        with tarfile.open(source, "w:" + suffix.removeprefix(".tar").lstrip(".")) as tf:
            for info, data in members:
                tf.addfile(info, io.BytesIO(data))
    data = source.read_bytes()
    kind = download_utils.file_format(source)
    assert download_utils.format_problem(source, kind) is None
    cut = tmp_path / ("cut" + suffix)
    # a plain tar ends with zero padding: cutting into that padding loses nothing, so cut before it
    last_useful = len(data.rstrip(b"\0")) if suffix == ".tar" else len(data)
    for length in sorted({1, 100, len(data) // 2, last_useful - 1, last_useful - 8} - {0}):
        cut.write_bytes(data[:length])
        assert download_utils.format_problem(cut, kind), (suffix, length)


def test_truncated_archive_renamed_into_place_by_an_older_version_is_resumed(server, zip_payload, tmp_path):
    server.file("/LA.zip", zip_payload)
    dest = tmp_path / "LA.zip"
    dest.write_bytes(zip_payload[:100_000])  # what the old downloader left: a cut file in place
    lines, log = quiet_log()
    download(f"{server.url}/LA.zip", dest, log=log, **FAST)
    assert dest.read_bytes() == zip_payload
    assert server.requests[0][1]["Range"] == "bytes=100000-"
    assert (
        lines[0].startswith(f"{dest}: not a complete zip file") and "resuming it as LA.zip.part" in lines[0]
    )


def test_refused_range_without_the_matching_total_starts_over(server, payload, tmp_path):
    (tmp_path / "w.bin.part").write_bytes(b"x" * (len(payload) + 5))  # longer than the file
    server.file("/w.bin", payload)
    download(f"{server.url}/w.bin", tmp_path / "w.bin", sha256=sha(payload), log=quiet_log()[1], **FAST)
    assert (tmp_path / "w.bin").read_bytes() == payload


# ---------------------------------------------------------------------------------------- Google Drive


def gdrive_routes(server, body, variant):
    """Google-Drive-like endpoints: /uc answers a virus-scan warning page until the confirmation is given."""
    file_headers = [("Content-Disposition", 'attachment; filename="weights.pth"')]

    def uc(h, q, n):
        if variant == "href" and q.get("confirm") == "XyZ1":
            return serve_bytes(h, body, extra=file_headers)
        if (
            variant == "cookie"
            and q.get("confirm") == "T0KEN"
            and "download_warning" in h.headers.get("Cookie", "")
        ):
            return serve_bytes(h, body, extra=file_headers)
        pages = {
            "form": (
                "<html><body><p>Google Drive can't scan this file for viruses.</p>"
                '<form id="download-form" action="/download" method="get">'
                '<input type="submit" value="Download anyway"/>'
                f'<input type="hidden" name="id" value="{q["id"]}"><input type="hidden" name="export" '
                'value="download"><input type="hidden" name="confirm" value="t"><input type="hidden" '
                'name="uuid" value="abc-123"></form></body></html>'
            ),
            "href": (
                "<html><body>Large file. "
                f'<a id="uc-download-link" href="/uc?export=download&amp;confirm=XyZ1&amp;id={q["id"]}">'
                "Download anyway</a></body></html>"
            ),
            "cookie": "<html><body>Google Drive - Virus scan warning</body></html>",
            "quota": (
                '<html><body><p class="uc-error-caption">Sorry, you can\'t view or download this file.</p>'
                '<p class="uc-error-subcaption">Too many users have viewed or downloaded this file '
                "recently.</p>"
                "</body></html>"
            ),
        }
        extra = [("Set-Cookie", f"download_warning_13058876669334088843_{q['id']}=T0KEN; Path=/")]
        serve_bytes(h, pages[variant].encode(), content_type="text/html; charset=utf-8", extra=extra)

    def confirmed(h, q, n):
        if q == {"id": "FILEID", "export": "download", "confirm": "t", "uuid": "abc-123"}:
            serve_bytes(h, body, extra=file_headers)
        else:
            h.send_error(403, "Forbidden")

    server.routes["/uc"] = uc
    server.routes["/download"] = confirmed


@pytest.mark.parametrize("variant", ["form", "href", "cookie"])
def test_google_drive_confirmation_page_is_followed(server, payload, tmp_path, variant):
    gdrive_routes(server, payload, variant)
    url = download_utils.gdrive_url("FILEID", f"{server.url}/uc?export=download&id={{id}}")
    download(
        Source(url, google_drive=True), tmp_path / "w.pth", sha256=sha(payload), log=quiet_log()[1], **FAST
    )
    assert (tmp_path / "w.pth").read_bytes() == payload
    assert len(server.requests) == 2


def test_google_drive_quota_page_is_a_clear_error(server, tmp_path):
    gdrive_routes(server, b"", "quota")
    url = f"{server.url}/uc?export=download&id=FILEID"
    with pytest.raises(DownloadError, match="Google Drive refused the download: Too many users"):
        download(Source(url, google_drive=True), tmp_path / "w.pth", log=quiet_log()[1], **FAST)


def test_google_drive_url_template_from_environment(monkeypatch):
    monkeypatch.setenv(download_utils.GDRIVE_URL_ENV, "http://mirror.test/d/{id}")
    assert download_utils.gdrive_url("a b") == "http://mirror.test/d/a%20b"
    monkeypatch.delenv(download_utils.GDRIVE_URL_ENV)
    assert download_utils.gdrive_url("X1") == "https://drive.google.com/uc?export=download&id=X1"


# ------------------------------------------------------------------------------------------- unpacking


def make_zip(path: Path, entries) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for entry in entries:
            if isinstance(entry, zipfile.ZipInfo):
                zf.writestr(entry, "target")
            else:
                zf.writestr(zipfile.ZipInfo(entry), f"content of {entry}")
    return path


def test_safe_zip_is_unpacked(tmp_path):
    archive = make_zip(tmp_path / "ok.zip", ["LA/a.txt", "LA/sub/b.txt"])
    assert safe_extract(archive, tmp_path / "out", log=quiet_log()[1]) == 2
    assert (tmp_path / "out/LA/sub/b.txt").read_text() == "content of LA/sub/b.txt"


def zip_symlink_entry():
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("../evil.txt", r"points outside the target \(\.\.\)"),
        ("ABSOLUTE", "has an absolute path"),
        ("LA/../../evil.txt", r"points outside the target \(\.\.\)"),
        ("SYMLINK", "is a symlink"),
    ],
)
def test_unsafe_zip_is_refused_and_nothing_written(tmp_path, bad, reason):
    outside = tmp_path / "evil.txt"
    if bad == "ABSOLUTE":
        bad = str(outside)
    entry = zip_symlink_entry() if bad == "SYMLINK" else bad
    archive = make_zip(tmp_path / "bad.zip", ["LA/good.txt", entry])
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=f"refusing to unpack: entry .*{reason}"):
        safe_extract(archive, target, log=quiet_log()[1])
    assert not outside.exists()
    assert not target.exists()  # checked before anything, even the good entry, was written


def make_tar(path: Path, members) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_link(name, target, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_safe_tar_is_unpacked(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", [tar_file("DSES/ESD/a.wav", b"abc")])
    safe_extract(archive, tmp_path / "out", log=quiet_log()[1])
    assert (tmp_path / "out/DSES/ESD/a.wav").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "member, reason",
    [
        (tar_link("link", "../..", tarfile.SYMTYPE), "is a symlink"),
        (tar_link("hard", "/etc/passwd", tarfile.LNKTYPE), "is a hard link"),
        (tar_file("../evil.txt"), r"points outside the target"),
    ],
)
def test_unsafe_tar_is_refused_and_nothing_written(tmp_path, member, reason):
    archive = make_tar(tmp_path / "bad.tar.gz", [tar_file("good.txt"), member, tar_file("link/evil.txt")])
    with pytest.raises(UnsafeArchiveError, match=reason):
        safe_extract(archive, tmp_path / "target", log=quiet_log()[1])
    assert not (tmp_path / "target").exists() and not (tmp_path / "evil.txt").exists()


FAKE_BSDTAR = """#!{python}
# A stand-in for bsdtar that reads zip archives (prefixed with the RAR magic), for the RAR code path.
import stat, sys, zipfile
args = sys.argv[1:]
zf = zipfile.ZipFile(args[1])
if args[0] in ("-tf", "-tvf"):
    for info in zf.infolist():
        link = stat.S_ISLNK(info.external_attr >> 16)
        print(("lrwxrwxrwx 0 0 0 0 Jan 1 2000 " if link else "-rw-r--r-- 0 0 0 0 Jan 1 2000 ") + info.filename
              if args[0] == "-tvf" else info.filename)
elif args[0] == "-xf":
    zf.extractall(args[3])
"""


@pytest.fixture
def fake_bsdtar(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "bsdtar"
    tool.write_text(FAKE_BSDTAR.format(python=sys.executable))
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return tool


def make_rar_like(path: Path, entries) -> Path:
    """A zip with the RAR signature in front: archive_kind says rar, the fake bsdtar can still read it."""
    inner = make_zip(path.with_suffix(".zip"), entries)
    path.write_bytes(b"Rar!\x1a\x07\x00" + inner.read_bytes())
    return path


def test_rar_goes_through_the_external_tool(tmp_path, fake_bsdtar):
    archive = make_rar_like(tmp_path / "DSES.rar", ["ESD/0011/Angry/a.wav"])
    assert download_utils.archive_kind(archive) == "rar"
    safe_extract(archive, tmp_path / "out", log=quiet_log()[1])
    assert (tmp_path / "out/ESD/0011/Angry/a.wav").is_file()


@pytest.mark.parametrize("bad", ["../evil.txt", "SYMLINK"])
def test_unsafe_rar_is_refused_before_the_tool_extracts(tmp_path, fake_bsdtar, bad):
    archive = make_rar_like(
        tmp_path / "DSES.rar", ["good.txt", zip_symlink_entry() if bad == "SYMLINK" else bad]
    )
    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, tmp_path / "target", log=quiet_log()[1])
    assert not (tmp_path / "target").exists() and not (tmp_path / "evil.txt").exists()


def test_missing_rar_tool_is_reported_before_downloading(server, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bsdtar, unrar or 7z here
    with pytest.raises(DownloadError, match="needs one of these on PATH: bsdtar .* unrar .* 7z"):
        download_dataset.prepare_dses(
            tmp_path, "gdrive", gdrive_template=f"{server.url}/uc?id={{id}}", **FAST
        )
    assert server.requests == []


# ------------------------------------------------------------------------------------ download_dataset


def write_flac(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.float32), 16000, format="FLAC")


SPLITS = {"train": "train.trn", "dev": "dev.trl", "eval": "eval.trl"}


def make_la_zip(path: Path, work: Path, drop_one=False) -> Path:
    """A tiny LA.zip with the real layout: top folder LA/, protocols, flac per protocol line, ASV scores."""
    root = work / "LA"
    for i, (split, suffix) in enumerate(SPLITS.items()):
        lines = [
            f"LA_0079 LA_{split[0].upper()}_{i}00001 - - bonafide",
            f"LA_0080 LA_{split[0].upper()}_{i}00002 - A01 spoof",
        ]
        protocol = root / "ASVspoof2019_LA_cm_protocols" / f"ASVspoof2019.LA.cm.{suffix}.txt"
        protocol.parent.mkdir(parents=True, exist_ok=True)
        protocol.write_text("\n".join(lines) + "\n")
        for j, line in enumerate(lines):
            if not (drop_one and split == "eval" and j == 1):
                write_flac(root / f"ASVspoof2019_LA_{split}" / "flac" / f"{line.split()[1]}.flac")
    scores = root / "ASVspoof2019_LA_asv_scores" / "ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"
    scores.parent.mkdir(parents=True)
    scores.write_text("LA_0079 bonafide target 1.0\n")
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(root.rglob("*")):
            zf.write(f, f.relative_to(work).as_posix())
    return path


def test_la_dataset_downloaded_unpacked_and_checked(server, tmp_path):
    la_zip = make_la_zip(tmp_path / "LA.zip", tmp_path / "src")
    server.file("/mirror/LA.zip", la_zip.read_bytes())
    out = tmp_path / "dataset"
    lines, log = quiet_log()
    path = download_dataset.prepare_la(out, mirror=f"{server.url}/mirror", log=log, **FAST)
    assert path == out / "LA"
    assert (out / "LA/ASVspoof2019_LA_cm_protocols/ASVspoof2019.LA.cm.eval.trl.txt").is_file()
    assert (out / "LA/ASVspoof2019_LA_dev/flac/LA_D_100001.flac").is_file()
    assert (out / "LA/ASVspoof2019_LA_asv_scores/ASVspoof2019.LA.asv.eval.gi.trl.scores.txt").is_file()
    assert not (out / "LA.zip").exists() and sorted(p.name for p in out.iterdir()) == ["LA"]
    assert any("eval: 2 trials (1 bona fide), all audio present" in line for line in lines)

    download_dataset.prepare_la(out, mirror=f"{server.url}/mirror", log=log, **FAST)
    assert len(server.requests) == 1  # second run: layout re-checked, nothing downloaded


def test_la_dataset_with_a_missing_flac_fails_the_check(server, tmp_path):
    la_zip = make_la_zip(tmp_path / "LA.zip", tmp_path / "src", drop_one=True)
    server.file("/LA.zip", la_zip.read_bytes())
    with pytest.raises(DownloadError, match=r"layout check failed: .*eval.*1 of 2 audio files are missing"):
        download_dataset.prepare_la(tmp_path / "dataset", mirror=server.url, log=quiet_log()[1], **FAST)
    assert (tmp_path / "dataset/LA.zip").exists()  # kept: the data is incomplete


def make_dses_zip(path: Path, work: Path) -> Path:
    for rel in ("Dataset/ESD/0011/Angry/0011_000351.wav", "Dataset/Zonos/0011/surprised/0011_1.wav"):
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(work / rel, np.zeros(1600, dtype=np.float32), 16000)
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(work.rglob("*.wav")):
            zf.write(f, f.relative_to(work).as_posix())
    return path


def test_dses_from_kaggle_with_credentials_redirect_and_layout_scan(server, tmp_path, monkeypatch):
    body = make_dses_zip(tmp_path / "dses.zip", tmp_path / "src").read_bytes()
    expected_auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()

    def api(h, q, n):
        if h.headers.get("Authorization") != expected_auth:
            return h.send_error(401, "Unauthorized")
        h.send_response(302)
        h.send_header("Location", "/storage/signed-archive.zip")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def storage(h, q, n):  # like cloud storage: a second credential next to the signed URL is an error
        if "Authorization" in h.headers:
            return h.send_error(400, "Bad Request")
        serve_bytes(h, body, content_type="application/zip")

    server.routes["/api/v1/datasets/download/" + download_dataset.DSES_KAGGLE_DATASET] = api
    server.routes["/storage/signed-archive.zip"] = storage
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "s3cret")
    lines, log = quiet_log()
    root = download_dataset.prepare_dses(
        tmp_path / "dataset", "kaggle", kaggle_api=f"{server.url}/api/v1", log=log, **FAST
    )
    assert root == tmp_path / "dataset/DSES"
    assert (root / "ESD/0011/Angry/0011_000351.wav").is_file()
    # the layout is scanned (emotions normalised, systems found); no protocol file is written into the data
    # (main.py scans DSES itself for each run)
    assert any(line.startswith(f"{root}: DSES layout: ") for line in lines)
    trials = download_dataset.check_dses_layout(root, log=quiet_log()[1])
    assert sorted([t.emotion, t.system, t.key] for t in trials) == [
        ["angry", "-", "bonafide"],
        ["surprise", "Zonos", "spoof"],
    ]
    assert sorted(p.name for p in root.iterdir()) == ["ESD", "Zonos"]
    assert not (tmp_path / "dataset/DSES.zip").exists()


def test_kaggle_without_credentials_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    with pytest.raises(DownloadError, match=r"Kaggle credentials not found: .*kaggle\.json.*KAGGLE_USERNAME"):
        download_dataset.prepare_dses(tmp_path / "dataset", "kaggle", **FAST)
    (tmp_path / "kaggle.json").write_text('{"username": "bob", "key": "k"}')
    assert download_utils.kaggle_authorization() == "Basic " + base64.b64encode(b"bob:k").decode()


# ------------------------------------------------------------------------------------ download_weights


def run_cli(script, *args, env=None):
    full_env = {**os.environ, "no_proxy": "*", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / script), *args],
        cwd=REPO_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_shows_every_registry_entry(tmp_path):
    registry = download_weights.load_registry()
    result = run_cli("download_weights.py", "--list", "--output_dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    for key, entry in registry.items():
        assert re.search(
            rf"^{re.escape(key)}  ->  {re.escape(entry['filename'])}  \(", result.stdout, re.M
        ), key
    for name in (
        "AASIST.pth",
        "AASIST-L.pth",
        "xlsr2_300m.pt",
        "ser_acrnn.pth",
        "AASIST_FiLM.pth",
        "AMSDF.pth",
    ):
        assert name in result.stdout


def test_registry_contract():
    registry = download_weights.load_registry()
    raw = json.loads(download_weights.REGISTRY_PATH.read_text())
    assert set(registry) == {k for k in raw if not k.startswith("_")}
    shared = REPO_ROOT.parent / "shared" / "weights" / "SHA256SUMS"
    if shared.exists():  # the registry's official hashes and sizes are those of the shared copies
        for line in shared.read_text().splitlines():
            digest, name = line.split()
            key = name.removesuffix(".pth")
            assert registry[key]["sha256"] == digest
            assert registry[key]["size"] == (shared.parent / name).stat().st_size
    for entry in registry.values():
        assert entry.get("licence") and entry.get("used_by") and entry.get("description")
        for spec in entry.get("files", [entry]):
            assert spec.get("sha256") is None or re.fullmatch(r"[0-9a-f]{64}", spec["sha256"])
    assert download_weights.resolve_names(["amsdf"], registry) == ["xlsr2_300m", "ser_acrnn", "AMSDF"]
    assert download_weights.resolve_names(["AASIST_FILM"], registry, with_deps=False) == ["AASIST_FiLM"]
    assert set(download_weights.resolve_names(["all"], registry)) == set(registry)
    with pytest.raises(download_weights.RegistryError, match="unknown model 'RawNet'"):
        download_weights.resolve_names(["RawNet"], registry)


def test_missing_weight_hint_names_the_download_command():
    import models

    for key, entry in download_weights.load_registry().items():
        hint = models.download_hint(Path("models/weights") / entry["filename"])
        assert hint == f"fetch it with: python download_weights.py --model {key}"


def test_download_weights_from_a_mirror_verifies_and_second_run_makes_no_request(server, tmp_path, shared):
    official = shared("weights", "AASIST.pth").read_bytes()
    server.file("/m/AASIST.pth", official)
    server.file("/m/AASIST-L.pth", b"not the AASIST-L weights")
    out = tmp_path / "weights"
    env = {download_utils.MIRROR_ENV: f"{server.url}/m"}

    result = run_cli("download_weights.py", "--model", "AASIST", "--output_dir", str(out), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert (out / "AASIST.pth").read_bytes() == official
    assert "SHA-256 51d2d9cf" in result.stdout and "verified" in result.stdout
    result = run_cli("download_weights.py", "--model", "AASIST", "--output_dir", str(out), env=env)
    assert result.returncode == 0 and "already present and verified" in result.stdout
    assert len(server.requests) == 1

    result = run_cli(
        "download_weights.py", "--model", "AASIST-L", "--output_dir", str(out), "--quiet", env=env
    )
    assert result.returncode == 1
    assert re.search(r"error: AASIST-L\.pth: .*expected 426428", result.stderr)
    assert not (out / "AASIST-L.pth").exists()


def test_file_inside_a_google_drive_folder_is_found_and_fetched(server, payload, tmp_path, monkeypatch):
    gdown = pytest.importorskip("gdown", reason="the Drive-folder lookup uses gdown's folder listing")
    from gdown.download import GoogleDriveFileToDownload

    listed = []

    def fake_listing(id, skip_download, quiet):
        listed.append(id)
        return [
            GoogleDriveFileToDownload(id="M1ID", path="M1.pth", local_path=None),
            GoogleDriveFileToDownload(id="FILEID", path="pretrained/ser_acrnn.pth", local_path=None),
        ]

    monkeypatch.setattr(gdown, "download_folder", fake_listing)
    gdrive_routes(server, payload, "form")
    registry = download_weights.load_registry()
    template = f"{server.url}/uc?export=download&id={{id}}"
    kwargs = dict(gdrive_template=template, log=quiet_log()[1], **FAST)
    path = download_weights.fetch_entry("ser_acrnn", registry["ser_acrnn"], tmp_path, **kwargs)
    assert path.read_bytes() == payload and listed == ["1XjVZ6K12KdC3Xm2Ri5l8FYpUJf5IlqPa"]
    download_weights.fetch_entry("ser_acrnn", registry["ser_acrnn"], tmp_path, **kwargs)
    assert listed == ["1XjVZ6K12KdC3Xm2Ri5l8FYpUJf5IlqPa"]  # second run: not even the folder is listed again


def test_folder_entry_fetches_each_file_under_its_own_name(server, payload, tmp_path):
    for name, body in (
        ("config.json", b"{}"),
        ("preprocessor_config.json", b"{}"),
        ("pytorch_model.bin", payload),
    ):
        server.file(f"/m/wav2vec2-xls-r-300m/{name}", body)
    registry = download_weights.load_registry()
    folder = download_weights.fetch_entry(
        "wav2vec2-xls-r-300m",
        registry["wav2vec2-xls-r-300m"],
        tmp_path,
        mirror=f"{server.url}/m",
        log=quiet_log()[1],
        **FAST,
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "preprocessor_config.json",
        "pytorch_model.bin",
    ]
    assert (folder / "pytorch_model.bin").read_bytes() == payload


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: every connection is refused at once (a dead network)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_dead_network_names_the_mirror_option_the_manual_page_and_the_target(tmp_path):
    out = tmp_path / "weights"
    env = {download_utils.MIRROR_ENV: closed_port_url() + "/m"}
    result = run_cli(
        "download_weights.py",
        "--model",
        "AASIST_FiLM",
        "--no_deps",
        "--output_dir",
        str(out),
        "--quiet",
        "--retries",
        "1",
        env=env,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith(("error:", str(out)))]
    assert re.fullmatch(
        r"error: AASIST_FiLM\.pth: cannot reach http://127\.0\.0\.1:\d+/m/AASIST_FiLM\.pth: .*"
        r"\(gave up after 1 retries\)",
        errors[0],
    )
    hint = errors[1]
    assert hint.startswith(
        f"{out / 'AASIST_FiLM.pth'}: not downloaded; run again later, or fetch it from a mirror"
    )
    assert (
        "--mirror URL" in hint
        and f"{download_utils.MIRROR_ENV}=URL" in hint
        and "URL/AASIST_FiLM.pth" in hint
    )
    drive_id = download_weights.load_registry()["AASIST_FiLM"]["gdrive_id"]
    assert f"download it by hand from https://drive.google.com/file/d/{drive_id}/view" in hint
    assert hint.endswith(f"save it as {out / 'AASIST_FiLM.pth'}")
    assert "Traceback" not in result.stderr


def test_dead_network_hint_says_what_a_rerun_resumes(tmp_path):
    dest = tmp_path / "LA.zip"
    (tmp_path / "LA.zip.part").write_bytes(bytes(2048))
    hint = download_utils.elsewhere_hint(dest, "LA.zip", "https://example.org/page")
    assert hint.startswith(f"{dest}: not downloaded; run again to resume the 2.0 KiB in {dest}.part, or ")


def test_dead_network_hint_for_each_missing_file_of_a_folder_entry(tmp_path):
    registry = download_weights.load_registry()
    lines = download_weights.how_to_get_it_elsewhere(registry["wav2vec2-xls-r-300m"], tmp_path)
    assert [line.split(":")[0] for line in lines] == [
        str(tmp_path / "wav2vec2-xls-r-300m" / name)
        for name in ("config.json", "preprocessor_config.json", "pytorch_model.bin")
    ]
    assert "https://huggingface.co/facebook/wav2vec2-xls-r-300m/resolve/main/pytorch_model.bin" in lines[2]
    assert "URL/wav2vec2-xls-r-300m/pytorch_model.bin" in lines[2]


def test_dataset_dead_network_names_the_mirror_option_the_manual_page_and_the_target(tmp_path):
    out = tmp_path / "dataset"
    result = run_cli(
        "download_dataset.py",
        "--dataset",
        "LA",
        "--output_dir",
        str(out),
        "--quiet",
        "--retries",
        "0",
        "--mirror",
        closed_port_url(),
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error, hint = result.stderr.strip().splitlines()
    assert error.startswith("error: LA.zip: cannot reach http://127.0.0.1:")
    assert hint.startswith(f"{out / 'LA.zip'}: not downloaded; run again later, or fetch it from a mirror")
    assert "--mirror URL" in hint and f"{download_utils.MIRROR_ENV}=URL" in hint
    assert f"download it by hand from {download_dataset.LA_PAGE} and save it as {out / 'LA.zip'}" in hint


def la_cli_error(out: Path, mirror: str) -> str:
    """The one error line of a failing ``download_dataset.py --dataset LA`` run from ``mirror``."""
    result = run_cli(
        "download_dataset.py", "--dataset", "LA", "--output_dir", str(out), "--quiet", "--mirror", mirror
    )
    assert result.returncode == 1
    (error,) = result.stderr.strip().splitlines()
    return error


def test_damaged_dataset_archive_is_named_with_the_command_to_delete_and_fetch_it_again(server, tmp_path):
    out = tmp_path / "dataset"
    server.file("/m/LA.zip", b"PK\x03\x04" + bytes(5000))  # complete by its length, but no zip
    error = la_cli_error(out, f"{server.url}/m")
    part = out / "LA.zip.part"
    assert error.startswith(
        f"error: {part}: not a complete zip file (File is not a zip file), although the server"
    )
    command = f"python download_dataset.py --dataset LA --output_dir {out} --mirror {server.url}/m"
    assert error.endswith(f"; delete it and fetch it again: rm -- {part} && {command}")
    assert part.exists() and not (out / "LA.zip").exists()  # never put in place; the command deletes it


def test_archive_that_fails_to_unpack_is_named_with_the_command_to_delete_and_fetch_it_again(
    server, tmp_path
):
    out = tmp_path / "dataset"
    la_zip = bytearray(make_la_zip(tmp_path / "LA.zip", tmp_path / "src").read_bytes())
    member_data = la_zip.index(b"LA_0079 LA_T")  # a protocol's bytes (stored): its CRC no longer matches
    la_zip[member_data : member_data + 7] = b"XX_0079"  # while the listing stays intact
    server.file("/m/LA.zip", bytes(la_zip))
    error = la_cli_error(out, f"{server.url}/m")
    assert error.startswith(f"error: {out / 'LA.zip'}: damaged archive: ")
    command = f"python download_dataset.py --dataset LA --output_dir {out} --mirror {server.url}/m"
    assert error.endswith(f"; delete it and fetch it again: rm -- {out / 'LA.zip'} && {command}")


def test_list_says_which_checksums_are_still_unknown(tmp_path):
    registry = download_weights.load_registry()
    unknown = [
        name
        for key, entry in registry.items()
        for name in (
            [f"{entry['filename']}/{f['filename']}" for f in entry["files"] if not f.get("sha256")]
            if "files" in entry
            else ([entry["filename"]] if not entry.get("sha256") else [])
        )
    ]
    total = sum(len(entry.get("files", [entry])) for entry in registry.values())
    result = run_cli("download_weights.py", "--list", "--output_dir", str(tmp_path))
    assert result.returncode == 0
    assert (
        f"SHA-256 not yet recorded for {len(unknown)} of {total} files: {', '.join(unknown)}."
        in result.stdout
    )
    assert "AASIST.pth" not in result.stdout.split("SHA-256 not yet recorded")[1].split(".")[0]
    assert "wav2vec2-xls-r-300m  ->  wav2vec2-xls-r-300m  (size unknown, 3 files, SHA-256 unknown for 3," in (
        result.stdout
    )


def test_download_of_a_file_without_known_checksum_prints_what_to_record(server, zip_payload, tmp_path):
    server.file("/m/AASIST_FiLM.pth", zip_payload)  # a torch checkpoint is a zip file
    registry = download_weights.load_registry()
    lines, log = quiet_log()
    download_weights.fetch_entry(
        "AASIST_FiLM", registry["AASIST_FiLM"], tmp_path, mirror=f"{server.url}/m", log=log, **FAST
    )
    assert lines[-1] == (
        f"{tmp_path / 'AASIST_FiLM.pth'}: models/weights_registry.json does not know this file's SHA-256 yet; "
        f'once it is confirmed to be the right file, record "sha256": "{sha(zip_payload)}", '
        f'"size": {len(zip_payload)} under "AASIST_FiLM"'
    )


@pytest.mark.parametrize("script", ["download_weights.py", "download_dataset.py"])
def test_help_documents_the_exit_codes(script):
    result = run_cli(script, "--help")
    text = " ".join(result.stdout.split())
    assert result.returncode == 0
    assert (
        "Exit status: 0 " in text
        and "; 1 " in text
        and "; 2 bad arguments" in text
        and "130 interrupted" in text
    )
