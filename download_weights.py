"""Download pretrained weights listed in models/weights_registry.json, verified and resumable.

    python download_weights.py --list
    python download_weights.py --model AASIST [--model AASIST-L ...] [--output_dir ./models/weights]
    python download_weights.py --model all

Every file keeps its own name in --output_dir. A model that needs other files (AMSDF needs XLS-R and the
emotion encoder) fetches them too, unless --no_deps. A file already present and verified is not downloaded
again. A file whose SHA-256 the registry does not know yet is complete only once its length matches the
server's or its contents check out (see antispoof/download.py); its SHA-256 is printed so that a maintainer
can record it.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from antispoof.download import (
    GDRIVE_URL_ENV,
    MIRROR_ENV,
    DownloadError,
    LocalProblemError,
    Source,
    VerificationError,
    download,
    elsewhere_hint,
    env_or,
    gdrive_url,
    human_size,
    mirror_url,
    refetch_hint,
)

REPO_ROOT = Path(__file__).resolve().parent
REGISTRY_PATH = REPO_ROOT / "models" / "weights_registry.json"
DEFAULT_OUTPUT_DIR = "./models/weights"
SOURCE_FIELDS = ("urls", "gdrive_id", "gdrive_folder", "files")


class RegistryError(ValueError):
    """The registry file is malformed, or a requested name is not in it."""


def load_registry(path: Path = REGISTRY_PATH) -> dict[str, dict]:
    """The registry's entries (comment keys starting with '_' dropped), checked for the fields used here."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{path}: cannot read the weight registry: {exc}") from exc
    entries = {k: v for k, v in raw.items() if not k.startswith("_")}
    filenames: dict[str, str] = {}
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not entry.get("filename"):
            raise RegistryError(f"{path}: entry {key!r} has no 'filename'")
        if not any(entry.get(f) for f in SOURCE_FIELDS):
            raise RegistryError(f"{path}: entry {key!r} has no source ({', '.join(SOURCE_FIELDS)})")
        if entry["filename"] in filenames:
            raise RegistryError(
                f"{path}: {key!r} and {filenames[entry['filename']]!r} share {entry['filename']}"
            )
        filenames[entry["filename"]] = key
        for dependency in entry.get("requires", []):
            if dependency not in entries:
                raise RegistryError(f"{path}: entry {key!r} requires unknown entry {dependency!r}")
    return entries


def resolve_names(names: list[str], registry: dict[str, dict], with_deps: bool = True) -> list[str]:
    """Registry keys for ``names`` ('all' = every entry; case-insensitive), each after what it requires."""
    by_lower = {k.lower(): k for k in registry}
    ordered: list[str] = []

    def add(key: str) -> None:
        if key in ordered:
            return
        if with_deps:
            for dependency in registry[key].get("requires", []):
                add(dependency)
        ordered.append(key)

    for name in names:
        if name.lower() == "all":
            for key in registry:
                add(key)
            continue
        key = by_lower.get(name.lower())
        if key is None:
            raise RegistryError(
                f"unknown model {name!r}; known: {', '.join(registry)} (or 'all'); see --list"
            )
        add(key)
    return ordered


def gdrive_folder_file_id(folder_id: str, file_name: str) -> str:
    """The Drive id of ``file_name`` inside a public Google Drive folder, from gdown's folder listing."""
    folder_url = f"https://drive.google.com/drive/folders/{folder_id}"
    try:
        import gdown
    except ImportError as exc:
        raise DownloadError(
            f"{file_name}: finding it in the Google Drive folder {folder_url} needs the gdown package "
            f"(pip install gdown), or download it there by hand"
        ) from exc
    try:
        listing = gdown.download_folder(id=folder_id, skip_download=True, quiet=True)
    except Exception as exc:  # gdown raises several types for network and parsing failures
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DownloadError(
            f"{file_name}: cannot list the Google Drive folder {folder_url}: {first_line}"
        ) from exc
    names = []
    for item in listing or []:
        name = PurePosixPath(str(item.path).replace("\\", "/")).name
        if name == file_name:
            return item.id
        names.append(name)
    raise DownloadError(
        f"{file_name}: not in the Google Drive folder {folder_url} "
        f"(it holds: {', '.join(names) or 'nothing'})"
    )


def sources_for(
    spec: dict, relative_name: str, mirror: str | None, gdrive_template: str | None
) -> list[Source]:
    """Where to fetch one file: only the mirror when one is set, else the registry URLs, then Google Drive."""
    if mirror:
        return [Source(mirror_url(mirror, relative_name))]
    sources = [Source(url) for url in spec.get("urls", [])]
    if spec.get("gdrive_id"):
        sources.append(Source(gdrive_url(spec["gdrive_id"], gdrive_template), google_drive=True))
    folder = spec.get("gdrive_folder")
    if folder:
        file_id = gdrive_folder_file_id(folder["id"], folder.get("file", spec["filename"]))
        sources.append(Source(gdrive_url(file_id, gdrive_template), google_drive=True))
    return sources


def _jobs(entry: dict, output_dir: Path) -> list[tuple[dict, Path, str]]:
    """(file spec, destination, name relative to --output_dir and to a mirror) for each file of an entry."""
    if "files" in entry:
        folder = output_dir / entry["filename"]
        return [(f, folder / f["filename"], f"{entry['filename']}/{f['filename']}") for f in entry["files"]]
    return [(entry, output_dir / entry["filename"], entry["filename"])]


def fetch_entry(
    key: str,
    entry: dict,
    output_dir: Path,
    *,
    mirror: str | None = None,
    gdrive_template: str | None = None,
    retries: int = 5,
    backoff: float = 2.0,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Fetch one registry entry (a file, or a folder of files) into ``output_dir``; return its path."""

    def ask_to_record(dest: Path, size: int, sha256: str) -> None:
        log(
            f"{dest}: models/weights_registry.json does not know this file's SHA-256 yet; once it is confirmed "
            f'to be the right file, record "sha256": "{sha256}", "size": {size} under "{key}"'
        )

    for spec, dest, relative_name in _jobs(entry, output_dir):
        download(
            # a function: the sources are worked out only when needed (listing a Drive folder is a request)
            lambda spec=spec, name=relative_name: sources_for(spec, name, mirror, gdrive_template),
            dest,
            sha256=spec.get("sha256"),
            size=spec.get("size"),
            binary=spec.get("binary", True),
            retries=retries,
            backoff=backoff,
            progress=progress,
            log=log,
            on_downloaded=None if spec.get("sha256") else ask_to_record,
        )
    return output_dir / entry["filename"]


def manual_download_page(spec: dict) -> str:
    """Where a person can fetch the file with a browser."""
    if spec.get("urls"):
        return spec["urls"][0]
    if spec.get("gdrive_id"):
        return f"https://drive.google.com/file/d/{spec['gdrive_id']}/view"
    folder = spec["gdrive_folder"]
    return (
        f"https://drive.google.com/drive/folders/{folder['id']} (file {folder.get('file', spec['filename'])})"
    )


def how_to_get_it_elsewhere(entry: dict, output_dir: Path) -> list[str]:
    """One line for each file of ``entry`` still missing: the mirror option and the manual download."""
    return [
        elsewhere_hint(dest, name, manual_download_page(spec))
        for spec, dest, name in _jobs(entry, output_dir)
        if not dest.is_file()
    ]


def _status(entry: dict, output_dir: Path) -> str:
    path = output_dir / entry["filename"]
    if path.exists():
        return "present"
    if path.with_name(path.name + ".part").exists():
        return "partial"
    return "missing"


def _sources_text(entry: dict) -> list[str]:
    lines = list(entry.get("urls", []))
    if entry.get("gdrive_id"):
        lines.append(f"Google Drive id {entry['gdrive_id']}")
    if entry.get("gdrive_folder"):
        folder = entry["gdrive_folder"]
        lines.append(f"Google Drive folder {folder['id']}, file {folder.get('file', entry['filename'])}")
    for f in entry.get("files", []):
        lines.extend(f.get("urls", []))
    return lines


def unknown_checksums(registry: dict[str, dict]) -> tuple[list[str], int]:
    """The files (relative names) whose SHA-256 the registry does not know yet, and the number of files."""
    names = [
        name
        for entry in registry.values()
        for spec, _, name in _jobs(entry, Path())
        if not spec.get("sha256")
    ]
    return names, sum(len(entry.get("files", [entry])) for entry in registry.values())


def _checksum_text(entry: dict) -> str:
    if "files" not in entry:
        return f"SHA-256 {entry['sha256'][:12]}..." if entry.get("sha256") else "SHA-256 unknown"
    unknown = sum(1 for f in entry["files"] if not f.get("sha256"))
    return f"{len(entry['files'])} files" + (f", SHA-256 unknown for {unknown}" if unknown else "")


def format_listing(registry: dict[str, dict], output_dir: Path, verbose: bool = False) -> str:
    out = [
        f"Weight files in {REGISTRY_PATH.relative_to(REPO_ROOT)} (status in {output_dir}); "
        "fetch one with: python download_weights.py --model NAME",
        "",
    ]
    for key, entry in registry.items():
        sizes = [spec.get("size") for spec, _, _ in _jobs(entry, output_dir)]
        size = human_size(sum(sizes)) if None not in sizes else "size unknown"
        out.append(
            f"{key}  ->  {entry['filename']}  ({size}, {_checksum_text(entry)}, {_status(entry, output_dir)})"
        )
        out.append(f"    {entry.get('description', '')}")
        for line in _sources_text(entry):
            out.append(f"    from: {line}")
        out.append(f"    licence: {entry.get('licence', 'unknown')}")
        if entry.get("used_by"):
            out.append(f"    used by: {'; '.join(entry['used_by'])}")
        if entry.get("requires"):
            out.append(f"    also fetches: {', '.join(entry['requires'])}")
        if verbose and entry.get("notes"):
            out.append(f"    notes: {entry['notes']}")
    unknown, total = unknown_checksums(registry)
    if unknown:
        out += [
            "",
            f"SHA-256 not yet recorded for {len(unknown)} of {total} files: {', '.join(unknown)}. Such a file "
            "counts as complete when its length matches the server's or its contents check out; the download "
            f"prints its SHA-256, to be recorded in {REGISTRY_PATH.relative_to(REPO_ROOT)} once the file is "
            "confirmed.",
        ]
    return "\n".join(out)


EXIT_CODES = (
    "Exit status: 0 every requested file is in place and complete (verified where its SHA-256 is known); "
    "1 a file could not be fetched or is not the expected one (one error line per file says which and why, "
    "then how to get it elsewhere; partial downloads are kept as <name>.part and resumed by the next run); "
    "2 bad arguments or an unreadable registry; 130 interrupted (partial downloads are kept)."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Download pretrained weights (verified by size and SHA-256 where known, resumable).",
        epilog=(
            f"Environment: {MIRROR_ENV}=URL fetches every file from URL/<filename> instead of its usual "
            f"source (a mirror or a local http.server); {GDRIVE_URL_ENV}=TEMPLATE replaces the Google Drive "
            "download URL (with an {id} placeholder). The flags override them. " + EXIT_CODES
        ),
    )
    parser.add_argument(
        "--model",
        action="extend",
        nargs="+",
        metavar="NAME",
        help="registry name(s) to fetch, e.g. AASIST AASIST_FiLM AMSDF, or 'all'; see --list",
    )
    parser.add_argument("--list", action="store_true", help="show every registry entry and exit")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="with --list: also print each entry's notes"
    )
    parser.add_argument(
        "--output_dir", default=DEFAULT_OUTPUT_DIR, help="where files go (default: %(default)s)"
    )
    parser.add_argument(
        "--no_deps", action="store_true", help="fetch only the named entries, not what they require"
    )
    parser.add_argument("--mirror", help=f"base URL holding the files by name (default: ${MIRROR_ENV})")
    parser.add_argument(
        "--gdrive_url", help=f"Google Drive download URL template with {{id}} (default: ${GDRIVE_URL_ENV})"
    )
    parser.add_argument("--retries", type=int, default=5, help="retries per file on network errors and 5xx")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def command_to_fetch(key: str, args: argparse.Namespace) -> str:
    """The command line that fetches ``key`` again with this run's settings."""
    script = os.path.relpath(__file__)
    words = ["python", script if not script.startswith("..") else __file__, "--model", key]
    if args.output_dir != DEFAULT_OUTPUT_DIR:
        words += ["--output_dir", args.output_dir]
    if args.mirror:
        words += ["--mirror", args.mirror]
    return shlex.join(words)


def fetch_all(keys: list[str], registry: dict[str, dict], args: argparse.Namespace) -> list[str]:
    """Fetch every key; print one error line per failure and how else to get the file; return the failed."""
    output_dir = Path(args.output_dir)
    failed = []
    for key in keys:
        try:
            fetch_entry(
                key,
                registry[key],
                output_dir,
                mirror=env_or(args.mirror, MIRROR_ENV),
                gdrive_template=args.gdrive_url,
                retries=args.retries,
                progress=not args.quiet,
            )
        except VerificationError as exc:
            print(f"error: {refetch_hint(exc, command_to_fetch(key, args))}", file=sys.stderr)
            failed.append(key)
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if not isinstance(exc, LocalProblemError):  # another source would not help with a full disk
                for line in how_to_get_it_elsewhere(registry[key], output_dir):
                    print(line, file=sys.stderr)
            failed.append(key)
        except OSError as exc:  # e.g. --output_dir names a file, or a folder we may not write to
            print(f"error: {exc.filename or output_dir}: {exc.strerror or exc}", file=sys.stderr)
            failed.append(key)
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    output_dir = Path(args.output_dir)
    try:
        registry = load_registry()
        if args.list:
            print(format_listing(registry, output_dir, args.verbose))
            return 0
        if not args.model:
            parser.error("give --model NAME (or 'all'), or --list")
        keys = resolve_names(args.model, registry, with_deps=not args.no_deps)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        failed = fetch_all(keys, registry, args)
    except KeyboardInterrupt:
        print(
            "interrupted: partial downloads are kept; run the same command again to resume", file=sys.stderr
        )
        return 130
    done = [k for k in keys if k not in failed]
    if done:
        print("ready: " + ", ".join(str(output_dir / registry[k]["filename"]) for k in done))
    if failed:
        print(f"failed: {', '.join(failed)} (see the lines above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
