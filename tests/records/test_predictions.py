"""Prediction sidecars: round trip next to a record, deterministic bytes, hash checked, untrusted files refused
(sizes bounded before loading, no pickles, no links or FIFOs, members exactly as recorded)."""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from satbench.records import predictions as P
from satbench.errors import ResultsError
from satbench.io.hashing import sha256_bytes
from satbench.records.results import read_records


def _record(n: int = 6, classes: int = 4) -> dict:
    return {"schema": "satbench.record/1", "id": "abc123def456", "task": "linear", "model": "m",
            "weights": {"source": "random", "seed": 0}, "protocol": {"name": "p", "hash": "0" * 64},
            "dataset": {"name": "toy", "num_classes": classes, "split_hashes": {"train": "1" * 64, "val": "2" * 64}},
            "metrics": {"n_val": n}, "summary": {"top1": 50.0}, "provenance": {"date": "2026-01-02T03:04:05+00:00"}}


def _arrays(n: int = 6) -> dict:
    y = np.arange(n) % 4
    return {"y_true": y, "pred__top1": (y + (np.arange(n) % 2)) % 4, f"pred__{P.knn_key(0.125, 20)}": y}


@pytest.fixture
def written(tmp_path):
    rec = _record()
    path = P.write_record_with_predictions(rec, _arrays(), 4, tmp_path)
    return path, json.loads(path.read_text())


def test_round_trip_next_to_the_record(written, tmp_path):
    path, rec = written
    e = rec["predictions"]
    assert e["file"] == path.stem + ".preds.npz" and (tmp_path / e["file"]).is_file()
    assert e["keys"] == ["pred__knn_s0.125_k20", "pred__top1", "y_true"] and e["n"] == 6 and e["num_classes"] == 4
    assert e["sha256"] == sha256_bytes((tmp_path / e["file"]).read_bytes())
    for source in (path, str(path), read_records(tmp_path)[0]):
        p = P.predictions_for_record(source)
        np.testing.assert_array_equal(p.y_true, _arrays()["y_true"])
        np.testing.assert_array_equal(p.preds["top1"], _arrays()["pred__top1"])
        assert set(p.preds) == {"top1", "knn_s0.125_k20"} and p.confusion is None
        assert p.correct("top1").tolist() == [1, 0, 1, 0, 1, 0]
    # plain numpy reads it too
    with np.load(tmp_path / e["file"], allow_pickle=False) as z:
        assert sorted(z.files) == e["keys"]


def test_bytes_are_deterministic_and_segmentation_confusions_round_trip(tmp_path):
    a = P.encode(P.validate_arrays(_arrays(), 4)[0])
    assert a == P.encode(P.validate_arrays(_arrays(), 4)[0])
    cm = np.random.default_rng(0).integers(0, 100, size=(3, 5, 5))
    rec = _record(3, 5)
    rec["task"] = "segmentation"
    path = P.write_record_with_predictions(rec, {"confusion": cm}, 5, tmp_path)
    p = P.predictions_for_record(path)
    np.testing.assert_array_equal(p.confusion, cm)
    assert p.y_true is None and p.preds == {}


def test_confidences_round_trip_as_float64(tmp_path):
    arrays = {**_arrays(), "conf__top1": np.array([0.25, 1.0, 0.5, 0.999999999999, 0.3, 0.7]),
              "conf__top1.ts": np.linspace(0.3, 0.9, 6)}
    path = P.write_record_with_predictions(_record(), arrays, 4, tmp_path)
    rec = json.loads(path.read_text())
    assert rec["predictions"]["format"] == "satbench.preds/2" and "conf__top1" in rec["predictions"]["keys"]
    p = P.predictions_for_record(path)
    assert p.conf["top1"].dtype == np.float64 and p.conf["top1"].tolist() == arrays["conf__top1"].tolist()
    assert p.conf["top1.ts"].tolist() == arrays["conf__top1.ts"].tolist() and set(p.preds) == {"top1", "knn_s0.125_k20"}
    members = {f"{k}.npy": _npy(np.asarray(v, dtype="<f8" if k.startswith("conf__") else "<i8"))
               for k, v in arrays.items()}
    members["conf__top1.npy"] = _npy(np.array([0.25, 1.5, 0.5, 0.5, 0.3, 0.7]))
    _install(path, rec, tmp_path, _zip(members))
    with pytest.raises(ResultsError, match=r"conf__top1 holds values outside \[0, 1\]"):
        P.predictions_for_record(path)
    members["conf__top1.npy"] = _npy(np.arange(6, dtype="<i8") % 2)
    _install(path, rec, tmp_path, _zip(members))
    with pytest.raises(ResultsError, match=r"conf__top1 is int64\[6\], expected float64\[6\]"):
        P.predictions_for_record(path)


def test_sha256_mismatch_is_refused(written, tmp_path):
    path, rec = written
    side = tmp_path / rec["predictions"]["file"]
    data = bytearray(side.read_bytes())
    data[-30] ^= 1
    side.write_bytes(bytes(data))
    with pytest.raises(ResultsError, match="sha256 does not match"):
        P.predictions_for_record(path)
    # a valid sidecar of another run under this name is refused as well
    side.write_bytes(P.encode(P.validate_arrays({**_arrays(), "pred__top1": _arrays()["y_true"]}, 4)[0]))
    with pytest.raises(ResultsError, match="sha256 does not match"):
        P.predictions_for_record(path)


def _rewrite(path: Path, rec: dict) -> None:
    rec.pop("_path", None)
    path.write_text(json.dumps(rec))


@pytest.mark.parametrize("change, pattern", [
    (lambda e: e.update(file="../elsewhere.preds.npz"), "plain file name"),
    (lambda e: e.update(file="x.npz"), "plain file name"),
    (lambda e: e.update(keys=["y_true", "pred__../x"]), "predictions.keys"),
    (lambda e: e.update(keys=["y_true", "y_true"]), "predictions.keys"),
    (lambda e: e.update(sha256="abc"), "64 hex"),
    (lambda e: e.update(keys=["y_true", "pred__top1"]), "members .* differ"),
    (lambda e: e.update(n=7), r"predictions.n = 7 but metrics.n_val = 6"),
])
def test_record_entry_is_checked(written, change, pattern):
    path, rec = written
    change(rec["predictions"])
    _rewrite(path, rec)
    with pytest.raises(ResultsError, match=pattern):
        P.predictions_for_record(path)


def test_record_without_predictions(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_record()))
    with pytest.raises(ResultsError, match="no predictions sidecar"):
        P.predictions_for_record(path)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(a: np.ndarray, allow_pickle: bool = False) -> bytes:
    b = io.BytesIO()
    np.save(b, a, allow_pickle=allow_pickle)
    return b.getvalue()


def _install(path: Path, rec: dict, tmp_path: Path, data: bytes) -> None:
    side = tmp_path / rec["predictions"]["file"]
    side.unlink()
    side.write_bytes(data)
    rec["predictions"]["sha256"] = sha256_bytes(data)  # a consistent but hostile record + sidecar pair
    _rewrite(path, rec)


def test_absurd_declared_shape_is_refused_before_loading(written, tmp_path, monkeypatch):
    path, rec = written
    a = _arrays()
    members = {f"{k}.npy": _npy(np.asarray(v, dtype="<i8")) for k, v in a.items()}
    members["y_true.npy"] = _npy(np.zeros(7, dtype="<i8"))  # one more image than the record has
    _install(path, rec, tmp_path, _zip(members))

    def no_load(*args, **kwargs):
        raise AssertionError("np.load reached before the headers were checked")

    monkeypatch.setattr(np, "load", no_load)
    with pytest.raises(ResultsError, match=r"y_true is int64\[7\].*expected int64\[6\]"):
        P.predictions_for_record(path)


def test_oversized_sidecar_is_refused_from_its_size(written, tmp_path):
    path, rec = written
    noise = np.random.default_rng(0).integers(0, 2 ** 62, size=200_000)  # incompressible, far beyond 6 images
    _install(path, rec, tmp_path, _zip({"y_true.npy": _npy(noise), "pred__top1.npy": b"", "pred__knn_s0.125_k20.npy": b""}))
    with pytest.raises(ResultsError, match=r"predictions sidecar .* is [0-9.]+ \S+, larger than the .* allowed"):
        P.predictions_for_record(path)


def test_member_that_unpacks_beyond_its_size_is_refused(written, tmp_path):
    path, rec = written
    bomb = b"\0" * 5_000_000  # deflates to a few KB
    members = {f"{k}.npy": _npy(np.asarray(v, dtype="<i8")) for k, v in _arrays().items()}
    members["pred__top1.npy"] = bomb
    _install(path, rec, tmp_path, _zip(members))
    with pytest.raises(ResultsError, match="unpacks to 5000000 bytes"):
        P.predictions_for_record(path)


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_member_is_never_unpickled(written, tmp_path):
    path, rec = written
    marker = tmp_path / "PWNED"
    obj = np.empty(6, dtype=object)
    obj[:] = [_Payload(str(marker))] * 6
    members = {f"{k}.npy": _npy(np.asarray(v, dtype="<i8")) for k, v in _arrays().items()}
    members["y_true.npy"] = _npy(obj, allow_pickle=True)
    _install(path, rec, tmp_path, _zip(members))
    with pytest.raises(ResultsError, match="y_true is object"):
        P.predictions_for_record(path)
    assert not marker.exists()


def test_labels_outside_the_classes_are_refused(written, tmp_path):
    path, rec = written
    members = {f"{k}.npy": _npy(np.asarray(v, dtype="<i8")) for k, v in _arrays().items()}
    members["pred__top1.npy"] = _npy(np.array([0, 1, 2, 3, 4, 99], dtype="<i8"))
    _install(path, rec, tmp_path, _zip(members))
    with pytest.raises(ResultsError, match="labels outside 0..3"):
        P.predictions_for_record(path)


def test_missing_link_and_fifo_sidecars(written, tmp_path):
    path, rec = written
    side = tmp_path / rec["predictions"]["file"]
    real = tmp_path / "real.bin"
    side.rename(real)
    with pytest.raises(ResultsError, match="is missing"):
        P.predictions_for_record(path)
    side.symlink_to(real)
    with pytest.raises(ResultsError, match=r"is a symbolic link \(not followed\)"):
        P.predictions_for_record(path)
    side.unlink()
    os.mkfifo(side)
    result: list = []

    def read():
        try:
            P.predictions_for_record(path)
        except ResultsError as exc:
            result.append(str(exc))

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "reading a FIFO sidecar hung"
    assert result and "not a regular file" in result[0]


@pytest.mark.parametrize("arrays, pattern", [
    ({"y_true": [0, 1], "pred__bad/key": [0, 1]}, "array name"),
    ({"y_true": [0.5, 1.0]}, "must hold integers"),
    ({"y_true": [0, 1], "pred__top1": [0, 9]}, "labels outside"),
    ({"y_true": [0, 1], "pred__top1": [0, 1, 1]}, "shape"),
    ({"pred__top1": [0, 1]}, "needs y_true"),
    ({"confusion": np.zeros((2, 3, 3), dtype=int)}, r"confusion must be \[n, 4, 4\]"),
    ({"y_true": [0, 1], "pred__top1": [0, 1], "conf__top1": [1, 0]}, "must hold floats"),
    ({"y_true": [0, 1], "pred__top1": [0, 1], "conf__top1": [0.5, np.nan]}, r"confidences in \[0, 1\]"),
    ({"y_true": [0, 1], "pred__top1": [0, 1], "conf__other": [0.5, 0.5]}, "no predictions pred__other"),
    ({"y_true": [0, 1], "pred__top1": [0, 1], "conf__top1": [0.5]}, "shape"),
])
def test_bad_arrays_are_refused_on_write(tmp_path, arrays, pattern):
    with pytest.raises(ValueError, match=pattern):
        P.write_sidecar(tmp_path / "x.preds.npz", arrays, 4)
    assert not (tmp_path / "x.preds.npz").exists()


def test_never_overwrites(tmp_path):
    P.write_sidecar(tmp_path / "x.preds.npz", _arrays(), 4)
    with pytest.raises(FileExistsError):
        P.write_sidecar(tmp_path / "x.preds.npz", _arrays(), 4)
    # two records with the same stem get distinct files
    a = P.write_record_with_predictions(_record(), _arrays(), 4, tmp_path)
    b = P.write_record_with_predictions(_record(), _arrays(), 4, tmp_path)
    assert a != b and b.name.endswith("-1.json")
    assert json.loads(b.read_text())["predictions"]["file"] == b.stem + ".preds.npz"
    assert P.predictions_for_record(b).preds.keys() == {"top1", "knn_s0.125_k20"}
