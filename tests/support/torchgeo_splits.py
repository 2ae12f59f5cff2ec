"""TorchGeo-style split files for tests: generated over a folder of bundled images, served by the loopback server at
the catalog's own Hugging Face paths, with the catalog spec's md5s replaced by those of the generated files.

The real files (TorchGeo's published splits) cannot be downloaded here; the test files have their form: one file
name per line (``agricultural04.tif``), 60/20/20 per class.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Optional

from satbench.io.hub_url import parse_hub_url


def torchgeo_lines(images: Path, extension: str = ".tif") -> dict[str, list[str]]:
    """train / val / test file names (TorchGeo's form) over ``images/<class>/*``: per class, every fifth image from
    the fourth on is val, from the fifth on test, the rest train (in file-name order)."""
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for cls in sorted(p for p in images.iterdir() if p.is_dir()):
        for i, f in enumerate(sorted(cls.iterdir())):
            split = "val" if i % 5 == 3 else "test" if i % 5 == 4 else "train"
            lines[split].append(f.stem + extension)
    return lines


def serve(monkeypatch: Any, srv: Any, dataset: str, lines: dict[str, list[str]], *, hf_cache: Path,
          md5: Optional[dict[str, str]] = None) -> dict[str, bytes]:
    """Serve ``lines`` as ``dataset``'s torchgeo split files on ``srv`` (as the hub: ``HF_ENDPOINT``), and make the
    catalog spec pin their md5s (or ``md5[split]``, e.g. a wrong one). Downloads are switched on for the test."""
    import huggingface_hub.constants as hfc

    from satbench.data import catalog

    monkeypatch.delenv("SATBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)  # read once at import
    monkeypatch.setenv("HF_HUB_CACHE", str(hf_cache))
    monkeypatch.setenv("HF_ENDPOINT", srv.endpoint)
    real, problems = catalog._load_catalog()
    spec = real[dataset]
    fam = spec.split_families["torchgeo"]
    files, served = {}, {}
    for split, rf in fam.files.items():
        data = ("\n".join(lines[split]) + "\n").encode()
        ref = parse_hub_url(rf.url)
        assert ref is not None
        srv.add(f"/{ref.repo_type}s/{ref.repo_id}/resolve/{ref.revision}/{ref.filename}", data)
        files[split] = dataclasses.replace(rf, md5=(md5 or {}).get(split, hashlib.md5(data).hexdigest()))
        served[split] = data
    patched = dataclasses.replace(spec, split_families={"torchgeo": dataclasses.replace(fam, files=files)})
    monkeypatch.setattr(catalog, "_load_catalog", lambda: ({**real, dataset: patched}, problems))
    return served
