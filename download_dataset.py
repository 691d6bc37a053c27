"""Download and unpack the datasets, then check their layout.

    python download_dataset.py --dataset LA [--output_dir ./dataset]
        ASVspoof 2019 LA (LA.zip, about 7.6 GB, from the University of Edinburgh DataShare, handle 10283/3336)
        -> ./dataset/LA/ (the configs' database_path), layout checked.
    python download_dataset.py --dataset emotional [--source kaggle|gdrive] [--output_dir ./dataset]
        The Dataset of Synthesized Emotional Speech (DSES) from Kaggle (needs an API token) or the
        upstream's Google Drive mirror (a RAR archive: needs bsdtar, unrar or 7z on PATH)
        -> ./dataset/DSES/ (the configs' emo_dataset), layout scanned (main.py scans it again for each run).
    python download_dataset.py --dataset LA21|DF21|EmoSpoofTTS|EmoFake [--output_dir ./dataset]
        The evaluation sets of main.py --eval --eval_set NAME=PATH from their Zenodo records (size and MD5
        checked) and, for ASVspoof 2021, the official keys -> ./dataset/NAME/, layout checked.
    python download_dataset.py --dataset ITW
        In-the-Wild has no direct download: prints its page and the folder to unpack it into.

Downloads resume after a cut connection. The archives' size and SHA-256 are not published, so an archive
counts as complete only when its length matches the server's or, failing that, when its listing checks out;
until then it stays <name>.part and the next run resumes it. Archives are unpacked only after every entry is
checked to stay inside the target folder. A second run with the data in place downloads nothing and re-runs
the check.
"""

from __future__ import annotations

import argparse
import os
import shlex
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
    LocalProblemError,
    Source,
    VerificationError,
    archive_kind,
    download,
    elsewhere_hint,
    env_or,
    find_folder_containing,
    find_rar_tool,
    gdrive_url,
    kaggle_authorization,
    mirror_url,
    refetch_hint,
    remove_tree,
    safe_extract,
)
from antispoof.evalsets.download import DOWNLOADS, ZENODO_API_ENV, prepare_eval_set
from antispoof.protocols import ASVSPOOF_PROTOCOL_DIR, BONAFIDE_SYSTEM_DIR, check_asvspoof_layout, scan_dses

LA_URLS = [
    "https://datashare.ed.ac.uk/bitstream/handle/10283/3336/LA.zip",
    "https://datashare.ed.ac.uk/bitstream/handle/10283/3336/LA.zip?sequence=3&isAllowed=y",
]
LA_ARCHIVE = "LA.zip"
LA_PAGE = "https://datashare.ed.ac.uk/handle/10283/3336"
LA_FOLDER = "LA"
LA_MARKER = ASVSPOOF_PROTOCOL_DIR  # the folder that identifies the unpacked LA root

DSES_KAGGLE_DATASET = "annazykovamyzina/dataset-of-synthesized-emotional-speech"
DSES_GDRIVE_ID = "1vDCHiMKfJiylum_IHZL3uZXVJkQpdrQv"
DSES_FOLDER = "DSES"
DSES_MARKER = BONAFIDE_SYSTEM_DIR  # bona fide speech lives in ESD/<speaker>/<emotion>/
DSES_KAGGLE_PAGE = f"https://www.kaggle.com/datasets/{DSES_KAGGLE_DATASET}"
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
    """The ASVspoof 2019 LA layout check (protocols present, every entry has its flac), reported in one line."""
    try:
        report = check_asvspoof_layout(database_path)
    except Exception as exc:  # the layout check reports a bad layout with its own exception types
        raise DownloadError(f"{database_path}: layout check failed: {exc}") from exc
    log(f"{database_path}: layout check: {_describe(report)}")
    return report


def check_dses_layout(root: Path, log: Callable[[str], None] = print) -> list:
    """Scan the DSES folder (``scan_dses``) and report what it holds in one line; return its trials."""
    try:
        trials, report = scan_dses(root)
    except Exception as exc:  # the scan reports a bad layout with its own exception types
        raise DownloadError(f"{root}: DSES layout check failed: {exc}") from exc
    log(f"{root}: DSES layout: {_describe(report)}")
    return trials


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
                except VerificationError as exc:  # the file to delete is the outer archive, not our copy
                    raise VerificationError(
                        f"{archive}: its inner archive {inner[0].name} is damaged ({exc})", archive
                    ) from exc
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


def _prepare(
    target: Path,
    marker: str,
    fetch_archive: Callable[[], Path],
    check: Callable[[Path, Callable[[str], None]], object],
    keep_archive: bool,
    log: Callable[[str], None],
) -> Path:
    """The dataset at ``target`` (recognised by its ``marker`` folder): fetched, unpacked, checked."""
    if (target / marker).is_dir():
        log(f"{target}: already unpacked; nothing to download")
        check(target, log)
        return target
    _refuse_foreign_target(target, marker)
    archive = fetch_archive()
    _unpack_into_place(archive, target, marker, log)
    check(target, log)
    _finish(archive, keep_archive, log)
    return target


def prepare_la(
    output_dir: Path,
    *,
    mirror: str | None = None,
    keep_archive: bool = False,
    log: Callable[[str], None] = print,
    **download_options,
) -> Path:
    """ASVspoof 2019 LA into ``output_dir/LA`` (database_path), then its layout checked; returns that path.

    ``download_options`` (retries, backoff, progress, timeout) go to ``antispoof.download.download``.
    """
    archive = output_dir / LA_ARCHIVE

    def fetch() -> Path:
        sources = [mirror_url(mirror, LA_ARCHIVE)] if mirror else LA_URLS
        return download(sources, archive, log=log, **download_options)

    return _prepare(output_dir / LA_FOLDER, LA_MARKER, fetch, check_la_layout, keep_archive, log)


def dses_archive(output_dir: Path, source: str) -> Path:
    """Where the DSES archive from ``source`` is saved: Kaggle serves a zip, Google Drive a rar."""
    if source not in ("kaggle", "gdrive"):
        raise DownloadError(f"unknown DSES source {source!r}; use kaggle or gdrive")
    return output_dir / ("DSES.zip" if source == "kaggle" else "DSES.rar")


def _dses_sources(
    archive: Path, source: str, mirror: str | None, gdrive_template: str | None, kaggle_api: str | None
) -> list[Source]:
    if mirror:
        return [Source(mirror_url(mirror, archive.name))]
    if source == "kaggle":
        api = env_or(kaggle_api, KAGGLE_API_ENV, _DEFAULT_KAGGLE_API).rstrip("/")
        url = f"{api}/datasets/download/{DSES_KAGGLE_DATASET}"
        return [Source(url, authorization=kaggle_authorization())]
    return [Source(gdrive_url(DSES_GDRIVE_ID, gdrive_template), google_drive=True)]


def prepare_dses(
    output_dir: Path,
    source: str = "kaggle",
    *,
    gdrive_template: str | None = None,
    kaggle_api: str | None = None,
    mirror: str | None = None,
    keep_archive: bool = False,
    log: Callable[[str], None] = print,
    **download_options,
) -> Path:
    """DSES into ``output_dir/DSES`` (emo_dataset), then its layout scanned; returns that path.

    ``download_options`` (retries, backoff, progress, timeout) go to ``antispoof.download.download``.
    """
    archive = dses_archive(output_dir, source)

    def fetch() -> Path:
        if source == "gdrive" and find_rar_tool() is None:  # say so before a multi-GB download, not after
            raise DownloadError(
                f"{archive.name} from Google Drive: {RAR_HELP}; or use --source kaggle (a zip)"
            )
        download(  # sources as a function: an archive already in place needs no Kaggle credentials
            lambda: _dses_sources(archive, source, mirror, gdrive_template, kaggle_api),
            archive,
            log=log,
            **download_options,
        )
        if archive_kind(archive) == "rar" and find_rar_tool() is None:
            raise DownloadError(
                f"{archive}: {RAR_HELP}; the archive is kept, run again once a tool is installed"
            )
        return archive

    return _prepare(output_dir / DSES_FOLDER, DSES_MARKER, fetch, check_dses_layout, keep_archive, log)


EXIT_CODES = (
    "Exit status: 0 the dataset is in place and its layout checked; 1 a download, unpack or layout check "
    "failed (one error line says which file and why, then how to get the archive elsewhere; a partial download "
    "is kept as <archive>.part and resumed by the next run); 2 bad arguments; 130 interrupted (partial "
    "downloads are kept)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Download, unpack and check ASVspoof 2019 LA or the Dataset of Synthesized Emotional "
        "Speech (DSES).",
        epilog=(
            f"Environment: {MIRROR_ENV}=URL fetches archives from URL/LA.zip, URL/DSES.zip or URL/DSES.rar "
            f"instead of their usual sources; {GDRIVE_URL_ENV} (a URL template with {{id}}) and "
            f"{KAGGLE_API_ENV} replace the Google Drive and Kaggle API addresses. The flags override them. "
            "Kaggle credentials: KAGGLE_USERNAME + KAGGLE_KEY, or ~/.kaggle/kaggle.json. "
            "A RAR archive needs bsdtar, unrar or 7z. " + EXIT_CODES
        ),
    )
    parser.add_argument(
        "--dataset",
        required=True,
        choices=["LA", "emotional", "DSES", *DOWNLOADS],
        help="LA: ASVspoof 2019 LA -> OUTPUT_DIR/LA; emotional (or DSES): the emotional spoof set "
        "-> OUTPUT_DIR/DSES; LA21, DF21, ITW, EmoSpoofTTS, EmoFake: evaluation sets -> OUTPUT_DIR/NAME",
    )
    parser.add_argument(
        "--zenodo_api",
        help=f"Zenodo REST API base URL (default: ${ZENODO_API_ENV} or https://zenodo.org/api)",
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


def command_to_fetch(args: argparse.Namespace) -> str:
    """The command line that fetches the dataset again with this run's settings."""
    script = os.path.relpath(__file__)
    words = ["python", script if not script.startswith("..") else __file__, "--dataset", args.dataset]
    words += ["--output_dir", args.output_dir]
    if args.dataset in ("emotional", "DSES"):
        words += ["--source", args.source]
    if args.mirror:
        words += ["--mirror", args.mirror]
    return shlex.join(words)


def _archive_and_page(args: argparse.Namespace) -> tuple[Path, str]:
    """Where the requested dataset's archive is saved, and the page a person can download it from."""
    if args.dataset == "LA":
        return Path(args.output_dir) / LA_ARCHIVE, LA_PAGE
    archive = dses_archive(Path(args.output_dir), args.source)
    if args.source == "kaggle":
        return archive, DSES_KAGGLE_PAGE
    return archive, f"https://drive.google.com/file/d/{DSES_GDRIVE_ID}/view"


def how_to_get_it_elsewhere(args: argparse.Namespace) -> str | None:
    """The mirror option and the manual download, for an archive that could not be fetched (else None)."""
    if args.dataset in DOWNLOADS:
        spec = DOWNLOADS[args.dataset]
        if spec.manual:
            return None  # the error line already says where to get it
        return (
            f"or download it by hand from {spec.page} and unpack it into {Path(args.output_dir) / spec.name}"
        )
    archive, page = _archive_and_page(args)
    folder, marker = (LA_FOLDER, LA_MARKER) if args.dataset == "LA" else (DSES_FOLDER, DSES_MARKER)
    if archive.is_file() or (archive.parent / folder / marker).is_dir():
        return None  # it was fetched: what failed came after
    return elsewhere_hint(archive, archive.name, page) + ", then run again"


def _prepare_requested(args: argparse.Namespace) -> Path:
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    common = dict(
        mirror=env_or(args.mirror, MIRROR_ENV),
        keep_archive=args.keep_archive,
        retries=args.retries,
        progress=not args.quiet,
    )
    if args.dataset == "LA":
        return prepare_la(output_dir, **common)
    if args.dataset in DOWNLOADS:
        del common["mirror"]  # Zenodo records are listed by their API: --zenodo_api points at another one
        return prepare_eval_set(args.dataset, output_dir, zenodo_api=args.zenodo_api, **common)
    return prepare_dses(
        output_dir, args.source, gdrive_template=args.gdrive_url, kaggle_api=args.kaggle_api, **common
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path = _prepare_requested(args)
    except VerificationError as exc:
        print(f"error: {refetch_hint(exc, command_to_fetch(args))}", file=sys.stderr)
        return 1
    except DownloadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        hint = None if isinstance(exc, LocalProblemError) else how_to_get_it_elsewhere(args)
        if hint:  # another source would not help with a full disk
            print(hint, file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. --output_dir names a file, or a folder we may not write to
        print(f"error: {exc.filename or args.output_dir}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: a partial download is kept; run the same command again to resume", file=sys.stderr
        )
        return 130
    print(f"ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
