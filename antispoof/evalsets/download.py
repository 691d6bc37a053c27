"""Downloading the evaluation sets that have a public URL (Zenodo records, the ASVspoof 2021 keys), resumable and
verified like the other downloads (:func:`antispoof.download.download`); for a set behind a page that needs a
person (In-the-Wild), the page and the folder to unpack into.

Zenodo publishes each file's size and MD5 (``https://zenodo.org/api/records/<id>``): both are checked. The
ASVspoof 2021 key archives' MD5s are the ones in the official eval-package README
(https://github.com/asvspoof-challenge/2021/tree/main/eval-package). Each archive is unpacked into the set's
folder as soon as it is complete and marked done (``.<archive>.unpacked``), so a second run fetches only what is
missing, and the archive is deleted unless kept.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from antispoof.download import (
    CHUNK_SIZE,
    USER_AGENT,
    DownloadError,
    Source,
    VerificationError,
    download,
    env_or,
    safe_extract,
)
from antispoof.errors import first_line

ZENODO_API_ENV = "AASIST_SER_ZENODO_API"
DEFAULT_ZENODO_API = "https://zenodo.org/api"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".rar")


@dataclass(frozen=True)
class Archive:
    """One archive to fetch and unpack into the set's folder; ``md5`` and ``size`` are checked when known."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class SetDownload:
    name: str  # the eval set's NAME (antispoof.evalsets.READERS)
    zenodo_record: str | None = None  # every archive of the record
    archives: tuple[Archive, ...] = ()
    page: str = ""  # where a person gets it
    manual: str = ""  # why it cannot be fetched here (a form, an agreement, no stable URL), if so


DOWNLOADS = {
    spec.name: spec
    for spec in (
        SetDownload(
            "LA21",
            "4837263",
            (
                Archive(
                    "LA-keys-full.tar.gz",
                    ("https://www.asvspoof.org/asvspoof2021/LA-keys-full.tar.gz",),
                    md5="f052cc2ed276745afa3b5198665d3b26",
                ),
            ),
            page="https://zenodo.org/records/4837263",
        ),
        SetDownload(
            "DF21",
            "4835108",
            (
                Archive(
                    "DF-keys-full.tar.gz",
                    ("https://www.asvspoof.org/asvspoof2021/DF-keys-full.tar.gz",),
                    md5="dabbc5628de4fcef53036c99ac7ab93a",
                ),
            ),
            page="https://zenodo.org/records/4835108",
        ),
        # the record's file names are not published outside Zenodo; its API lists them (and their MD5s) at run time
        SetDownload("EmoSpoofTTS", "15557842", page="https://zenodo.org/records/15557842"),
        # one archive, EmoFake.tar.gz, 8.8 GB (cyaaronk/audio_deepfake_eval datasets/download_datasets.sh, README.md)
        SetDownload("EmoFake", "10443769", page="https://zenodo.org/records/10443769"),
        SetDownload(
            "ITW",
            page="https://deepfake-total.com/in_the_wild",
            manual="In-the-Wild is handed out from its project page (no stable direct URL)",
        ),
    )
}


def zenodo_archives(record: str, api: str | None = None, timeout: float = 60.0) -> list[Archive]:
    """The archives of a Zenodo record, with their sizes and MD5s, from the Zenodo REST API."""
    base = env_or(api, ZENODO_API_ENV, DEFAULT_ZENODO_API).rstrip("/")
    url = f"{base}/records/{record}"
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            listing = json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(f"{url}: cannot list Zenodo record {record}: {first_line(exc)}") from exc
    archives = []
    for entry in listing.get("files", []):
        name = entry["key"]
        if not name.lower().endswith(ARCHIVE_SUFFIXES):
            continue  # a README or a licence beside the archives
        link = entry.get("links", {}).get("self") or f"{base}/records/{record}/files/{name}/content"
        checksum = str(entry.get("checksum", ""))
        md5 = checksum.split(":", 1)[1] if checksum.startswith("md5:") else None
        archives.append(Archive(name, (link,), md5=md5, size=entry.get("size")))
    if not archives:
        raise DownloadError(f"{url}: Zenodo record {record} lists no archive")
    return archives


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_and_unpack(
    archive: Archive, folder: Path, log: Callable[[str], None], keep_archive: bool, **download_options
) -> None:
    """``archive`` downloaded beside ``folder`` (resumed), its MD5 checked, unpacked into ``folder``, marked."""
    done = folder / f".{archive.name}.unpacked"
    if done.is_file():
        log(f"{archive.name}: already unpacked into {folder}")
        return
    path = folder.parent / archive.name
    download([Source(u) for u in archive.urls], path, size=archive.size, log=log, **download_options)
    if archive.md5 and md5_of(path) != archive.md5:
        raise VerificationError(
            f"{path}: MD5 differs from the published {archive.md5}: not the expected file", path
        )
    safe_extract(path, folder, log=log)
    done.write_text(f"{archive.md5 or ''}\n")
    if not keep_archive:
        path.unlink()


def prepare_eval_set(
    name: str,
    output_dir: Path,
    *,
    zenodo_api: str | None = None,
    keep_archive: bool = False,
    log: Callable[[str], None] = print,
    **download_options,
) -> Path:
    """Set ``name`` fetched and unpacked into ``output_dir/NAME`` (the PATH of ``--eval_set NAME=PATH``), then
    read once to check its layout; a set that needs a person raises a ``DownloadError`` naming the page and
    the folder to unpack into."""
    from antispoof.evalsets import read_eval_set

    spec = DOWNLOADS[name]
    target = output_dir / name
    if spec.manual:
        raise DownloadError(f"{spec.manual}: download it from {spec.page} and unpack it into {target}")
    target.mkdir(parents=True, exist_ok=True)
    archives = list(spec.archives)
    if spec.zenodo_record:
        archives = zenodo_archives(spec.zenodo_record, zenodo_api) + archives
    for archive in archives:
        fetch_and_unpack(archive, target, log, keep_archive, **download_options)
    try:
        evalset = read_eval_set(name, target)
    except (ValueError, OSError) as exc:
        log(f"{target}: unpacked, but its layout is not the expected one yet: {first_line(exc)}")
        return target
    log(f"{target}: layout checked: {len(evalset.trials)} trials (--eval_set {name}={target})")
    return target
