"""io.bounded's one opener of untrusted files: regular files only, links refused on request, never blocking; the
feature cache's entry reader and the segmentation card check go through it."""

from __future__ import annotations

import os

import pytest

from satbench.io.bounded import UntrustedFileError, open_regular_fd, read_bytes_bounded


def test_open_regular_fd_reads_a_file_positionally(tmp_path):
    p = tmp_path / "a.bin"
    p.write_bytes(b"0123456789")
    fd, st = open_regular_fd(p, follow_symlinks=False)
    try:
        assert st.st_size == 10 and os.pread(fd, 4, 3) == b"3456"
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
def test_open_regular_fd_refuses_what_satbench_did_not_write_as_a_file(tmp_path, kind):
    target = tmp_path / "real.bin"
    target.write_bytes(b"x")
    p = tmp_path / "p"
    {"fifo": lambda: os.mkfifo(p), "folder": lambda: p.mkdir(), "link": lambda: p.symlink_to(target)}[kind]()
    want = {"fifo": "is a FIFO", "folder": "is a folder", "link": "is a symbolic link"}[kind]
    with pytest.raises(UntrustedFileError, match=want):
        open_regular_fd(p, follow_symlinks=False)
    if kind == "link":  # followed when asked: the target is a regular file
        fd, _ = open_regular_fd(p)
        os.close(fd)
    else:
        with pytest.raises(UntrustedFileError, match=want):
            read_bytes_bounded(p, 10)


def test_the_cache_entry_reader_and_the_card_check_use_the_one_opener(tmp_path):
    from satbench.errors import ProtocolError
    from satbench.eval.cache_files import CacheMiss, DamagedEntry, open_entry_file
    from satbench.seg.run_args import MAX_CARD_BYTES, _check_card_file

    fifo = tmp_path / "e.npy"
    os.mkfifo(fifo)
    with pytest.raises(DamagedEntry, match="is a FIFO"):
        open_entry_file(fifo)
    with pytest.raises(CacheMiss):
        open_entry_file(tmp_path / "absent.npy")
    with pytest.raises(ProtocolError, match=r"card\.yaml: model card .*card\.yaml does not exist"):
        _check_card_file(str(tmp_path / "card.yaml"), "card.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_CARD_BYTES + 1))
    with pytest.raises(ProtocolError, match="larger than the 1 MiB allowed"):
        _check_card_file(str(big), "run")
    with pytest.raises(ProtocolError, match="is a FIFO"):
        _check_card_file(str(fifo), "run")
