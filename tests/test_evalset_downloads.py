"""download_dataset.py --dataset LA21 (and the other Zenodo sets) against a local HTTP server: the Zenodo
listing, size and MD5 checks, unpacking into the set's folder, a second run that fetches nothing, and the page
and folder for a set that needs a person."""

import hashlib
import io
import json
import tarfile
from dataclasses import replace

import pytest
from evalset_cases import write_la2021
from test_downloads import FAST, quiet_log

import download_dataset
from antispoof.download import VerificationError
from antispoof.evalsets import download as evalset_download


def tar_gz_of(folder, names) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in names:
            archive.add(folder / name, arcname=name)
    return buffer.getvalue()


@pytest.fixture
def la21_archives(tmp_path):
    source = write_la2021(tmp_path / "source")
    return tar_gz_of(source, ["ASVspoof2021_LA_eval"]), tar_gz_of(source, ["keys"])


def serve_la21(server, monkeypatch, audio: bytes, keys: bytes, listed_md5: str | None = None):
    listing = {
        "files": [
            {"key": "README.txt", "size": 5, "checksum": "md5:0", "links": {"self": f"{server.url}/readme"}},
            {
                "key": "ASVspoof2021_LA_eval.tar.gz",
                "size": len(audio),
                "checksum": "md5:" + (listed_md5 or hashlib.md5(audio).hexdigest()),
                "links": {"self": f"{server.url}/files/ASVspoof2021_LA_eval.tar.gz/content"},
            },
        ]
    }
    server.file("/api/records/4837263", json.dumps(listing).encode(), content_type="application/json")
    server.file("/files/ASVspoof2021_LA_eval.tar.gz/content", audio)
    server.file("/keys/LA-keys-full.tar.gz", keys)
    spec = evalset_download.DOWNLOADS["LA21"]
    keys_archive = replace(
        spec.archives[0], urls=(f"{server.url}/keys/LA-keys-full.tar.gz",), md5=hashlib.md5(keys).hexdigest()
    )
    monkeypatch.setitem(evalset_download.DOWNLOADS, "LA21", replace(spec, archives=(keys_archive,)))


def test_la21_is_fetched_from_zenodo_and_the_keys_checked_unpacked_and_read(
    server,
    monkeypatch,
    tmp_path,
    la21_archives,
):
    serve_la21(server, monkeypatch, *la21_archives)
    lines, log = quiet_log()
    out = tmp_path / "dataset"
    root = evalset_download.prepare_eval_set("LA21", out, zenodo_api=f"{server.url}/api", log=log, **FAST)
    assert root == out / "LA21"
    assert (root / "ASVspoof2021_LA_eval" / "flac" / "LA_E_1000000.flac").is_file()
    assert (root / "keys" / "LA" / "CM" / "trial_metadata.txt").is_file()
    assert any("layout checked: 24 trials" in line for line in lines)
    assert not (out / "ASVspoof2021_LA_eval.tar.gz").exists() and not server.hits("/readme")
    n_requests = len(server.requests)
    evalset_download.prepare_eval_set("LA21", out, zenodo_api=f"{server.url}/api", log=log, **FAST)
    assert [p for p, _ in server.requests[n_requests:]] == ["/api/records/4837263"]  # the listing only


def test_an_archive_whose_md5_differs_is_refused_and_not_unpacked(
    server,
    monkeypatch,
    tmp_path,
    la21_archives,
):
    serve_la21(server, monkeypatch, *la21_archives, listed_md5="0" * 32)
    with pytest.raises(VerificationError, match="MD5 differs from the published 0000"):
        evalset_download.prepare_eval_set(
            "LA21", tmp_path / "d", zenodo_api=f"{server.url}/api", log=quiet_log()[1], **FAST
        )
    assert not (tmp_path / "d" / "LA21" / "ASVspoof2021_LA_eval").exists()


def test_in_the_wild_names_its_page_and_the_folder_to_unpack_into(tmp_path, capsys):
    assert download_dataset.main(["--dataset", "ITW", "--output_dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "https://deepfake-total.com/in_the_wild" in err[0]
        and str(tmp_path / "ITW") in err[0]
    )
