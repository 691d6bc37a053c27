"""Download pretrained weights listed in models/weights_registry.json, verified and resumable.

    python download_weights.py --list
    python download_weights.py --model AASIST [--model AASIST-L ...] [--output_dir ./models/weights]
    python download_weights.py --model all

Every file keeps its own name in --output_dir. A model that needs other files (AMSDF needs XLS-R and the
emotion encoder) fetches them too, unless --no_deps. A file already present and verified is not downloaded
again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from antispoof.download import (
    GDRIVE_URL_ENV,
    MIRROR_ENV,
    DownloadError,
    Source,
    download,
    env_or,
    gdrive_url,
    human_size,
    mirror_url,
    verification_problem,
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
    if "files" in entry:
        folder = output_dir / entry["filename"]
        jobs = [(f, folder / f["filename"], f"{entry['filename']}/{f['filename']}") for f in entry["files"]]
    else:
        jobs = [(entry, output_dir / entry["filename"], entry["filename"])]
    for spec, dest, relative_name in jobs:
        sha256, size = spec.get("sha256"), spec.get("size")
        # checked before the sources are worked out: listing a Drive folder is already a request
        if dest.exists() and verification_problem(dest, sha256, size) is None:
            log(f"{dest}: already present" + (" and verified" if sha256 or size is not None else ""))
            continue
        download(
            sources_for(spec, relative_name, mirror, gdrive_template),
            dest,
            sha256=sha256,
            size=size,
            binary=spec.get("binary", True),
            retries=retries,
            backoff=backoff,
            progress=progress,
            log=log,
        )
    return output_dir / entry["filename"]


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


def format_listing(registry: dict[str, dict], output_dir: Path, verbose: bool = False) -> str:
    out = [
        f"Weight files in {REGISTRY_PATH.relative_to(REPO_ROOT)} (status in {output_dir}); "
        "fetch one with: python download_weights.py --model NAME",
        "",
    ]
    for key, entry in registry.items():
        if "files" in entry:
            sizes = [f.get("size") for f in entry["files"]]
            size = human_size(sum(sizes)) if all(s is not None for s in sizes) else "size unknown"
            check = f"{len(entry['files'])} files"
        else:
            size = human_size(entry["size"]) if entry.get("size") is not None else "size unknown"
            check = f"SHA-256 {entry['sha256'][:12]}..." if entry.get("sha256") else "SHA-256 unknown"
        out.append(f"{key}  ->  {entry['filename']}  ({size}, {check}, {_status(entry, output_dir)})")
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
    return "\n".join(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Download pretrained weights (verified by size and SHA-256 where known, resumable).",
        epilog=(
            f"Environment: {MIRROR_ENV}=URL fetches every file from URL/<filename> instead of its usual "
            f"source (a mirror or a local http.server); {GDRIVE_URL_ENV}=TEMPLATE replaces the Google Drive "
            "download URL (with an {id} placeholder). The flags override them."
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
    mirror = env_or(args.mirror, MIRROR_ENV)
    failed = []
    for key in keys:
        try:
            fetch_entry(
                key,
                registry[key],
                output_dir,
                mirror=mirror,
                gdrive_template=args.gdrive_url,
                retries=args.retries,
                progress=not args.quiet,
            )
        except DownloadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(key)
    done = [k for k in keys if k not in failed]
    if done:
        print("ready: " + ", ".join(str(output_dir / registry[k]["filename"]) for k in done))
    if failed:
        print(f"failed: {', '.join(failed)} (run again to resume; see the errors above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
