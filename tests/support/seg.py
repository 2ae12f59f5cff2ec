"""The small segmentation setup shared by the seg tests: the fixture tiles, the tiny card, the shrunk recipe."""

from __future__ import annotations

import zipfile
from pathlib import Path

from .paths import SEG_FIXTURES

FIX = SEG_FIXTURES
CARD = str(FIX / "cards" / "seg-test-vit_tiny-16.yaml")

# Shrink the 224 recipe for CPU tests: 64 px crops from 128 px tiles, narrow heads.
SMALL = [
    "model.data_preprocessor.size=(64,64)", "model.test_cfg.crop_size=(64,64)", "model.test_cfg.stride=(43,43)",
    "model.decode_head.channels=32", "model.auxiliary_head.channels=16",
    "train_dataloader.dataset.pipeline.2.scale=(128,128)", "train_dataloader.dataset.pipeline.3.crop_size=(64,64)",
    "val_dataloader.dataset.pipeline.1.scale=(128,128)", "test_dataloader.dataset.pipeline.1.scale=(128,128)",
    "test_pipeline.1.scale=(128,128)", "log_level='WARNING'",
]


def loveda_zips(src: Path) -> None:
    """The official LoveDA zip layout (<Split>/<Rural|Urban>/{images_png,masks_png}) from the real tiles."""
    src.mkdir()
    plan = {"Train": "train", "Val": "val", "Test": "val"}
    for split, ours in plan.items():
        with zipfile.ZipFile(src / f"{split}.zip", "w") as zf:
            for i, img in enumerate(sorted((FIX / "loveda" / "img_dir" / ours).glob("*.png"))):
                where = "Rural" if i % 2 == 0 else "Urban"
                zf.write(img, f"{split}/{where}/images_png/{img.name}")
                if split != "Test":
                    zf.write(FIX / "loveda" / "ann_dir" / ours / img.name, f"{split}/{where}/masks_png/{img.name}")
            for where in ("Rural", "Urban"):  # the converter lists both folders
                for kind in ("images_png", "masks_png"):
                    zf.writestr(f"{split}/{where}/{kind}/", "")
