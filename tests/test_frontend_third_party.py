"""Fetching and extracting the front end's third-party C: pinned, checked, never half-done."""

from __future__ import annotations

import io
import tarfile

import pytest

from tinydrift import firmware

# firmware/scripts/td_third_party.py, the one fetch the host and the PlatformIO build share.
tp = firmware.third_party_module()


def test_sources_are_extracted_as_c():
    sources = firmware.microfrontend_sources()
    assert all(path.is_file() and path.suffix == ".c" for path in sources.sources)
    assert {p.stem for p in sources.sources} == {*tp.MICROFRONTEND_C_FILES, "kiss_fft", "kiss_fftr"}
    assert "Apache License" in (sources.root / "LICENSE").read_text()
    assert sources.defines == {"FIXED_POINT": 16}
    # Nothing but the listed files: no C++ glue, no build scripts.
    extracted = {p.relative_to(sources.root).as_posix() for p in sources.root.rglob("*") if p.is_file()}
    assert not any(name.endswith((".cc", ".cpp", ".py")) for name in extracted)


def test_cached_archive_is_checked_and_reused(tmp_path):
    sdist = tp.fetch_sdist(tmp_path)
    assert tp._file_sha256(sdist) == tp.SDIST_SHA256
    before = sdist.stat().st_mtime_ns
    assert tp.fetch_sdist(tmp_path) == sdist and sdist.stat().st_mtime_ns == before
    # A corrupted cache is not trusted: it is downloaded again.
    sdist.write_bytes(b"not the archive")
    assert tp._file_sha256(tp.fetch_sdist(tmp_path)) == tp.SDIST_SHA256


def test_hash_mismatch_is_refused(tmp_path):
    with pytest.raises(tp.ThirdPartyError, match="sha256"):
        tp.fetch_sdist(tmp_path, sha256="0" * 64)
    assert not list(tmp_path.glob("*.tar.gz"))


def test_failed_download_is_a_clear_error(tmp_path):
    with pytest.raises(tp.ThirdPartyError, match=r"could not download pymicro-features==0\.0\.0"):
        tp.fetch_sdist(tmp_path, version="0.0.0")


def test_extraction_refuses_an_incomplete_archive_and_leaves_nothing(tmp_path):
    archive = tmp_path / "pymicro_features-9.9.9.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"license"
        info = tarfile.TarInfo("pymicro_features-9.9.9/LICENSE")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "extracted"
    with pytest.raises(tp.ThirdPartyError, match="missing"):
        tp.extract_sources(archive, dest)
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == [archive.name]


def test_extraction_is_redone_when_the_tree_is_not_the_expected_one(tmp_path):
    sdist = tp.fetch_sdist(firmware.THIRD_PARTY_DIR / "downloads")
    dest = tmp_path / "src"
    tp.extract_sources(sdist, dest)
    window = dest / tp.MICROFRONTEND_LIB / "window.c"
    original = window.read_text()
    (dest / ".extracted").write_text("stale\n")
    window.write_text("/* edited */")
    tp.extract_sources(sdist, dest)
    assert window.read_text() == original
