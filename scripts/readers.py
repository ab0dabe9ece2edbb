#!/usr/bin/env python3
"""Opens Parquet files with six readers we did not write: pyarrow, pandas, DuckDB, polars,
Spark (pyspark, local[1]) and Hugging Face `datasets`.

    readers.py FILE...                    open every file with each reader; print one line per
                                          reader (rows, columns); exit 1 if any reader fails
    readers.py --kinds JSON --key id FILE...
                                          print JSON {reader: {"columns": {name: [value...]}}
                                          or {"error": text}}, rows ordered by the key, each
                                          value in a canonical text form for its kind (see
                                          canon), or tagged with the Python type the reader
                                          gave when that is not the type the kind promises

Kinds: bool, int, float, dec, str, json, bytes, date, ts (no zone), tstz (UTC-adjusted),
and list:KIND. pandas is read twice: with its default numpy dtypes (must open) and with
dtype_backend="pyarrow" (values compared: numpy turns a nullable integer column into float64).
"""

import argparse
import datetime as dt
import json
import math
import os
import struct
import sys
import tempfile
from decimal import Decimal


def canon(kind, v):
    """A value as canonical text for its kind; a type the kind does not promise is tagged."""
    try:
        import pandas as pd

        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:
        pass
    if v is None:
        return None
    if type(v).__module__ == "numpy" and getattr(v, "ndim", None) == 0:
        v = v.item()
    tag = f"<{type(v).__name__}> {v!r}"
    if kind.startswith("list:"):
        if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
            return tag
        return [canon(kind[5:], e) for e in list(v)]
    if kind == "bool":
        return ("true" if v else "false") if isinstance(v, bool) else tag
    if kind == "int":
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else tag
    if kind == "float":
        if not isinstance(v, float):
            return tag
        return "NaN" if math.isnan(v) else struct.pack(">d", v).hex()
    if kind == "dec":
        return format(v, "f") if isinstance(v, Decimal) else tag
    if kind == "str":
        return v if isinstance(v, str) else tag
    if kind == "json":
        # the text as written, or, from a reader that decodes the JSON logical type
        # (`datasets`), the decoded value as compact JSON
        if isinstance(v, str):
            return v
        return "json:" + json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if kind == "bytes":
        return bytes(v).hex() if isinstance(v, (bytes, bytearray, memoryview)) else tag
    if kind == "date":
        if not isinstance(v, dt.date) or isinstance(v, dt.datetime):
            return tag
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}"
    if kind in ("ts", "tstz"):
        if not isinstance(v, dt.datetime):
            return tag
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}.{v.microsecond:06d}"
    raise ValueError(f"unknown kind {kind}")


def read_pyarrow(files, key):
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.concat_tables([pq.read_table(f) for f in files])
    if key:
        t = t.sort_by(key)
    return {n: t[n].to_pylist() for n in t.column_names}, {f.name: str(f.type) for f in t.schema}


def read_pandas_numpy(files, key):
    import pandas as pd

    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return {n: list(df[n]) for n in df.columns}, {n: str(t) for n, t in df.dtypes.items()}


def read_pandas(files, key):
    import pandas as pd

    df = pd.concat([pd.read_parquet(f, dtype_backend="pyarrow") for f in files], ignore_index=True)
    if key:
        df = df.sort_values(key, kind="stable", ignore_index=True)
    return {n: df[n].tolist() for n in df.columns}, {n: str(t) for n, t in df.dtypes.items()}


def read_duckdb(files, key):
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    order = f' ORDER BY "{key}"' if key else ""
    rel = con.execute(f"SELECT * FROM read_parquet(?){order}", [list(files)])
    names = [d[0] for d in rel.description]
    types = {d[0]: str(d[1]) for d in rel.description}
    rows = rel.fetchall()
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}, types


def read_polars(files, key):
    import polars as pl

    df = pl.concat([pl.read_parquet(f) for f in files])
    if key:
        df = df.sort(key)
    return {n: df[n].to_list() for n in df.columns}, {n: str(t) for n, t in df.schema.items()}


def read_spark(files, key):
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[1]")
        .appName("datadump-readers")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.memory", "512m")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(*[f"file://{os.path.abspath(f)}" for f in files])
    if key:
        df = df.orderBy(key)
    rows = df.collect()
    return {n: [r[n] for r in rows] for n in df.columns}, {f.name: f.dataType.simpleString() for f in df.schema.fields}


def read_datasets(files, key):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.load_dataset("parquet", data_files=list(files), split="train", cache_dir=cache)
        if key:
            ds = ds.sort(key)
        cols = {n: ds[n] for n in ds.column_names}
        cols = {n: list(c) for n, c in cols.items()}
        return cols, {n: str(f) for n, f in ds.features.items()}


READERS = [
    ("pyarrow", read_pyarrow),
    ("pandas", read_pandas),
    ("pandas-numpy", read_pandas_numpy),
    ("duckdb", read_duckdb),
    ("polars", read_polars),
    ("spark", read_spark),
    ("datasets", read_datasets),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kinds", help="JSON object: column name -> kind")
    ap.add_argument("--key", help="the column to order rows by")
    ap.add_argument("--only", help="comma-separated readers")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    kinds = json.loads(a.kinds) if a.kinds else None
    only = set(a.only.split(",")) if a.only else None
    out, failed = {}, []
    for name, read in READERS:
        if only and name not in only:
            continue
        try:
            cols, types = read(a.files, a.key if kinds else None)
            rows = len(next(iter(cols.values()), []))
            if kinds:
                out[name] = {
                    "types": types,
                    "columns": {c: [canon(k, v) for v in cols[c]] if c in cols else "<missing>" for c, k in kinds.items()},
                }
            else:
                print(f"{name:13} {rows:>9} rows  {len(cols)} columns: " + ", ".join(f"{c} {t}" for c, t in types.items()))
        except Exception as e:  # a reader that refuses the file is the finding
            msg = f"{type(e).__name__}: {e}".strip().splitlines()
            out[name] = {"error": " ".join(msg[:3])[:600]}
            failed.append(name)
            if not kinds:
                print(f"{name:13} FAILED: {out[name]['error']}")
    if kinds:
        json.dump(out, sys.stdout)
    elif failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
