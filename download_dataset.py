"""Download and unpack the datasets, then check their layout.

    python download_dataset.py --dataset LA [--output_dir ./dataset]
        ASVspoof 2019 LA (LA.zip, about 7.6 GB, from the University of Edinburgh DataShare, handle 10283/3336)
        -> ./dataset/LA/ (the configs' database_path), layout checked.
    python download_dataset.py --dataset emotional [--source kaggle|gdrive] [--output_dir ./dataset]
        The Dataset of Synthesized Emotional Speech (DSES) from Kaggle (needs an API token) or the
        upstream's Google Drive mirror (a RAR archive: needs bsdtar, unrar or 7z on PATH)
        -> ./dataset/DSES/ (the configs' emo_dataset), layout scanned and its protocol written.

Downloads resume after a cut connection; archives are unpacked only after every entry is checked to stay
inside the target folder. A second run with the data in place downloads nothing and re-runs the check.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from antispoof.download import DEFAULT_KAGGLE_API as _DEFAULT_KAGGLE_API
from antispoof.download import (
    GDRIVE_URL_ENV,
    KAGGLE_API_ENV,
    MIRROR_ENV,
    RAR_HELP,
    DownloadError,
    Source,
    archive_kind,
    download,
    env_or,
    find_folder_containing,
    find_rar_tool,
    gdrive_url,
    kaggle_authorization,
    mirror_url,
    remove_tree,
    safe_extract,
)

LA_URLS = [
    "https://datashare.ed.ac.uk/bitstream/handle/10283/3336/LA.zip",
    "https://datashare.ed.ac.uk/bitstream/handle/10283/3336/LA.zip?sequence=3&isAllowed=y",
]
LA_ARCHIVE = "LA.zip"
LA_FOLDER = "LA"
LA_MARKER = "ASVspoof2019_LA_cm_protocols"  # the folder that identifies the unpacked LA root

DSES_KAGGLE_DATASET = "annazykovamyzina/dataset-of-synthesized-emotional-speech"
DSES_GDRIVE_ID = "1vDCHiMKfJiylum_IHZL3uZXVJkQpdrQv"
DSES_FOLDER = "DSES"
DSES_MARKER = "ESD"  # bona fide speech lives in ESD/<speaker>/<emotion>/
DSES_PROTOCOL = "dses_protocol.tsv"  # written inside the DSES folder (data_utils.read_dses_protocol reads it)
ARCHIVE_SUFFIXES = (".zip", ".rar", ".tar", ".tar.gz", ".tgz")


def _describe(report) -> str:
    if report is None:
        return "ok"
    if hasattr(report, "summary"):
        return report.summary()
    if isinstance(report, dict):
        return "; ".join(f"{k}: {v}" for k, v in report.items())
    return "; ".join(line.strip() for line in str(report).splitlines() if line.strip())


def check_la_layout(database_path: Path, log: Callable[[str], None] = print):
    """Run data_utils' ASVspoof 2019 LA layout check (protocols present, every entry has its flac)."""
    try:
        from antispoof.data import check_asvspoof_layout
    except ImportError as exc:
        raise DownloadError(
            f"{database_path}: cannot check the layout: antispoof.data.check_asvspoof_layout ({exc})"
        ) from exc
    try:
        report = check_asvspoof_layout(database_path)
    except Exception as exc:  # data_utils reports a bad layout with its own exception types
        raise DownloadError(f"{database_path}: layout check failed: {exc}") from exc
    log(f"{database_path}: layout check: {_describe(report)}")
    return report


def build_dses_protocol(root: Path, log: Callable[[str], None] = print) -> Path:
    """Scan the DSES folder with data_utils and write its protocol (with the emotion column) inside it."""
    try:
        from antispoof.data import scan_dses, write_dses_protocol
    except ImportError as exc:
        raise DownloadError(
            f"{root}: cannot scan DSES: antispoof.data.scan_dses/write_dses_protocol ({exc})"
        ) from exc
    try:
        entries, report = scan_dses(root)
        protocol = root / DSES_PROTOCOL
        write_dses_protocol(entries, protocol, root)
    except Exception as exc:  # data_utils reports a bad layout with its own exception types
        raise DownloadError(f"{root}: DSES layout check failed: {exc}") from exc
    log(f"{root}: DSES layout: {_describe(report)}")
    log(f"{protocol}: protocol written ({len(entries)} trials)")
    return protocol


def _unpack_into_place(
    archive: Path, target: Path, marker: str, log: Callable[[str], None], nested: bool = True
) -> Path:
    """Unpack ``archive`` next to ``target`` and move the folder holding ``marker`` to ``target``.

    Archives differ in their top level (``LA/...`` or the files directly; a Kaggle zip may wrap a second
    archive), so the root is found by its marker folder rather than assumed.
    """
    staging = target.parent / f".{target.name}.unpacking"
    remove_tree(staging)
    try:
        safe_extract(archive, staging, log=log)
        root = find_folder_containing(staging, marker)
        if root is None and nested:
            inner = [
                p for p in staging.rglob("*") if p.is_file() and p.name.lower().endswith(ARCHIVE_SUFFIXES)
            ]
            if len(inner) == 1:
                log(f"{archive.name}: holds another archive, {inner[0].name}; unpacking it")
                moved = target.parent / f".{target.name}.inner-archive"
                os.replace(inner[0], moved)
                try:
                    return _unpack_into_place(moved, target, marker, log, nested=False)
                finally:
                    moved.unlink(missing_ok=True)
        if root is None:
            top = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
            raise DownloadError(
                f"{archive}: no {marker}/ folder inside (top level: {', '.join(top[:10]) or 'empty'}); "
                "not the expected dataset archive"
            )
        if target.exists():
            target.rmdir()  # only ever an empty folder here: callers refuse non-empty targets
        os.replace(root, target)
        log(f"{target}: unpacked")
        return target
    finally:
        remove_tree(staging)


def _refuse_foreign_target(target: Path, marker: str) -> None:
    if target.exists() and any(target.iterdir()):
        raise DownloadError(
            f"{target}: exists but has no {marker}/ folder (an interrupted unpack or other data?); "
            "move or delete it and run again"
        )


def _finish(archive: Path, keep_archive: bool, log: Callable[[str], None]) -> None:
    if keep_archive:
        log(f"{archive}: kept (--keep_archive)")
    else:
        archive.unlink(missing_ok=True)
        log(f"{archive}: deleted after unpacking (use --keep_archive to keep it)")


def prepare_la(
    output_dir: Path,
    *,
    mirror: str | None = None,
    keep_archive: bool = False,
    retries: int = 5,
    backoff: float = 2.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """ASVspoof 2019 LA into ``output_dir/LA`` (database_path), then its layout checked; returns that path."""
    target = output_dir / LA_FOLDER
    if (target / LA_MARKER).is_dir():
        log(f"{target}: already unpacked; nothing to download")
        check_la_layout(target, log)
        return target
    _refuse_foreign_target(target, LA_MARKER)
    archive = output_dir / LA_ARCHIVE
    sources = [mirror_url(mirror, LA_ARCHIVE)] if mirror else LA_URLS
    download(sources, archive, retries=retries, backoff=backoff, progress=progress, log=log)
    _unpack_into_place(archive, target, LA_MARKER, log)
    check_la_layout(target, log)
    _finish(archive, keep_archive, log)
    return target


def prepare_dses(
    output_dir: Path,
    source: str = "kaggle",
    *,
    mirror: str | None = None,
    gdrive_template: str | None = None,
    kaggle_api: str | None = None,
    keep_archive: bool = False,
    retries: int = 5,
    backoff: float = 2.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """DSES into ``output_dir/DSES`` (emo_dataset), scanned and its protocol written; returns that path."""
    target = output_dir / DSES_FOLDER
    if (target / DSES_MARKER).is_dir():
        log(f"{target}: already unpacked; nothing to download")
        build_dses_protocol(target, log)
        return target
    _refuse_foreign_target(target, DSES_MARKER)
    if source == "kaggle":
        archive = output_dir / "DSES.zip"
        if mirror:
            sources = [Source(mirror_url(mirror, archive.name))]
        else:
            api = env_or(kaggle_api, KAGGLE_API_ENV, _DEFAULT_KAGGLE_API).rstrip("/")
            url = f"{api}/datasets/download/{DSES_KAGGLE_DATASET}"
            sources = [Source(url, authorization=kaggle_authorization())]
    elif source == "gdrive":
        archive = output_dir / "DSES.rar"
        if find_rar_tool() is None:  # say so before a multi-GB download, not after
            raise DownloadError(
                f"{archive.name} from Google Drive: {RAR_HELP}; or use --source kaggle (a zip)"
            )
        if mirror:
            sources = [Source(mirror_url(mirror, archive.name))]
        else:
            sources = [Source(gdrive_url(DSES_GDRIVE_ID, gdrive_template), google_drive=True)]
    else:
        raise DownloadError(f"unknown DSES source {source!r}; use kaggle or gdrive")
    download(sources, archive, retries=retries, backoff=backoff, progress=progress, log=log)
    if archive_kind(archive) == "rar" and find_rar_tool() is None:
        raise DownloadError(f"{archive}: {RAR_HELP}; the archive is kept, run again once a tool is installed")
    _unpack_into_place(archive, target, DSES_MARKER, log)
    build_dses_protocol(target, log)
    _finish(archive, keep_archive, log)
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Download, unpack and check ASVspoof 2019 LA or the Dataset of Synthesized Emotional "
        "Speech (DSES).",
        epilog=(
            f"Environment: {MIRROR_ENV}=URL fetches archives from URL/LA.zip, URL/DSES.zip or URL/DSES.rar "
            f"instead of their usual sources; {GDRIVE_URL_ENV} (a URL template with {{id}}) and "
            f"{KAGGLE_API_ENV} replace the Google Drive and Kaggle API addresses. The flags override them. "
            "Kaggle credentials: KAGGLE_USERNAME + KAGGLE_KEY, or ~/.kaggle/kaggle.json. "
            "A RAR archive needs bsdtar, unrar or 7z."
        ),
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=["LA", "emotional", "DSES"],
        help="LA: ASVspoof 2019 LA -> OUTPUT_DIR/LA; emotional (or DSES): the emotional spoof set "
        "-> OUTPUT_DIR/DSES",
    )
    parser.add_argument(
        "--output_dir", default="./dataset", help="where the dataset folder goes (default: %(default)s)"
    )
    parser.add_argument(
        "--source",
        choices=["kaggle", "gdrive"],
        default="kaggle",
        help="where DSES comes from: the Kaggle API (zip, needs credentials) or Google Drive (rar) "
        "(default: %(default)s)",
    )
    parser.add_argument("--mirror", help=f"base URL holding the archives by name (default: ${MIRROR_ENV})")
    parser.add_argument(
        "--gdrive_url", help=f"Google Drive download URL template with {{id}} (default: ${GDRIVE_URL_ENV})"
    )
    parser.add_argument(
        "--kaggle_api", help=f"Kaggle API base URL (default: ${KAGGLE_API_ENV} or {_DEFAULT_KAGGLE_API})"
    )
    parser.add_argument(
        "--keep_archive", action="store_true", help="keep the downloaded archive after unpacking"
    )
    parser.add_argument(
        "--retries", type=int, default=5, help="retries on network errors and 5xx (default: %(default)s)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    mirror = env_or(args.mirror, MIRROR_ENV)
    common = dict(
        mirror=mirror, keep_archive=args.keep_archive, retries=args.retries, progress=not args.quiet
    )
    try:
        if args.dataset == "LA":
            path = prepare_la(output_dir, **common)
        else:
            path = prepare_dses(
                output_dir, args.source, gdrive_template=args.gdrive_url, kaggle_api=args.kaggle_api, **common
            )
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
