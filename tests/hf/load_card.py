"""Reads a local copy of a dump the way a dataset host's users do, and prints what it found.

Usage: load_card.py DIR   (DIR holds README.md and MEDIA/*.parquet, as under s3://BUCKET/PREFIX/DATE/)

huggingface_hub's DatasetCard parses the card (front matter included); datasets.load_dataset
loads every config the card declares, from the files the card lists, offline. Prints one JSON
object: the card's metadata and, per config, the rows and the features as `datasets` sees them.
"""

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from datasets import load_dataset  # noqa: E402
from huggingface_hub import DatasetCard  # noqa: E402

root = sys.argv[1]
card = DatasetCard.load(os.path.join(root, "README.md"))
data = card.data.to_dict()
out = {"card": data, "text_has_title": card.text.lstrip().startswith("# "), "configs": {}}
for config in data.get("configs", []):
    name = config["config_name"]
    ds = load_dataset(root, name, split="train")
    out["configs"][name] = {
        "rows": ds.num_rows,
        "features": {k: str(v) for k, v in ds.features.items()},
    }
print(json.dumps(out))
