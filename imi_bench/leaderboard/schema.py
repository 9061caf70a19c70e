"""The submission format: a ``meta.yaml`` (strict pydantic model) and a predictions file (CSV or Parquet).

A submission is a folder holding ``meta.yaml`` and exactly one of ``predictions.csv`` /
``predictions.parquet``, or a ``meta.yaml`` whose ``predictions:`` field names the file (a path
relative to the folder of ``meta.yaml``). The predictions have exactly the columns of
:attr:`~imi_bench.eval.evaluator.Evaluator.expected_input_format`: ``model, layer, channel, condition,
difficulty, prediction`` and, optionally, ``fold``.

This module checks what can be checked without the benchmark: sizes, UTF-8, YAML, the meta fields,
the column set and the column types. The checks against the benchmark (missing, extra and
duplicate unit rows, NaN/inf, range) are the Evaluator's own (:mod:`imi_bench.leaderboard.submit`).
Every failure raises :class:`~imi_bench.errors.ImiDataError` naming the file, and the row and
column where there is one.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ..errors import ImiDataError

__all__ = [
    "DEFAULT_MAX_BYTES", "MAX_PARQUET_ROWS", "META_MAX_BYTES", "OPTIONAL_COLUMNS", "REQUIRED_COLUMNS",
    "Submission", "SubmissionMeta", "TrainingData", "load_meta", "load_submission", "read_predictions",
]

#: Default size limit of a predictions file (bytes), checked before the file is read.
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Size limit of ``meta.yaml``.
META_MAX_BYTES = 64 * 1024
#: Row limit of a Parquet file (checked from its footer before decoding).
MAX_PARQUET_ROWS = 5_000_000
REQUIRED_COLUMNS = ("model", "layer", "channel", "condition", "difficulty", "prediction")
OPTIONAL_COLUMNS = ("fold",)
_STRING_COLUMNS = ("model", "layer", "condition", "difficulty", "fold")
_MAX_CHANNEL = 2**31 - 1

_Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200,
                                         pattern=r"^[^\x00-\x1f\x7f]+$")]
_Id = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
_Url = Annotated[str, StringConstraints(max_length=500, pattern=r"^https?://[^\s]+$")]
_Email = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
_Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class TrainingData(BaseModel):
    """What a method was trained or tuned on (declared; see ``leaderboard/README.md`` for the rules per split).

    Attributes:
        human_data: ``train-folds`` (only each fold's training rows of this benchmark, as the split
            prescribes), ``none`` (no human data: zero-shot) or ``external`` (human data beyond the
            training rows, described in ``notes``; never the benchmark's held-out responses).
        models: Networks whose units, activations or weights the method was fitted or tuned on
            (beyond computing the features of the unit being predicted). May be empty.
        notes: Free text; required when ``human_data`` is ``external``.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    human_data: Literal["train-folds", "none", "external"]
    models: list[_Text] = Field(max_length=200)
    notes: str = Field("", max_length=2000)

    @model_validator(mode="after")
    def _external_needs_notes(self) -> TrainingData:
        if self.human_data == "external" and not self.notes.strip():
            raise ValueError("human_data 'external' needs notes that say which human data were used")
        return self


class SubmissionMeta(BaseModel):
    """``meta.yaml`` of a submission: strict types, unknown fields rejected.

    Required: ``method``, ``authors``, ``contact`` (an e-mail address; it identifies the submitter
    for the rate limit and corrections), ``code_url``, ``description``, ``training_data``,
    ``imi_bench_version``, ``dataset`` (the dataset id, e.g. ``imi-sim``), ``split`` and ``seed``
    (seed of the bootstrap; the folds are the benchmark's). Optional: ``paper_url``,
    ``featurizer_hash``, ``dataset_digest`` (pins the dataset version when the store holds several),
    ``predictions`` (path of the predictions file relative to ``meta.yaml``'s folder) and
    ``supersedes`` (id of your earlier entry that this one corrects).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    method: _Text
    authors: list[_Text] = Field(min_length=1, max_length=50)
    contact: _Email
    code_url: _Url
    paper_url: _Url | None = None
    description: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    training_data: TrainingData
    featurizer_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{8,64}$")] | None = None
    imi_bench_version: Annotated[str, StringConstraints(min_length=1, max_length=50, pattern=r"^[0-9][0-9A-Za-z.+-]*$")]
    dataset: _Id
    dataset_digest: _Hex64 | None = None
    split: _Id
    seed: int = Field(ge=0, le=2**32 - 1)
    predictions: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    supersedes: int | None = Field(None, ge=1)

    @property
    def submitter(self) -> str:
        """The contact, normalised (lower case): the submitter identity for rate limits and corrections."""
        return self.contact.lower()


@dataclass(frozen=True)
class Submission:
    """A submission read from disk and checked on its own (not yet against a benchmark).

    Attributes:
        meta: The parsed ``meta.yaml``.
        meta_path: Where it was read from.
        predictions_path: The predictions file.
        predictions: The predictions, type-checked: string key columns, ``channel`` int64,
            ``prediction`` float64 (NaN/inf are left for the Evaluator's checks).
        sha256: SHA-256 of the predictions file's bytes.
    """

    meta: SubmissionMeta
    meta_path: Path
    predictions_path: Path
    predictions: pd.DataFrame
    sha256: str


def _read_limited(path: Path, limit: int, what: str) -> bytes:
    """A file's bytes, refusing files over ``limit`` before reading them."""
    if not path.is_file():
        raise ImiDataError(f"no such {what} file", file=path)
    size = path.stat().st_size
    if size > limit:
        raise ImiDataError(f"{what} file is {size:,} bytes; the limit is {limit:,}", file=path)
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # grew while we looked
        raise ImiDataError(f"{what} file is over the limit of {limit:,} bytes", file=path)
    return data


def _decode(data: bytes, path: Path) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ImiDataError(f"not UTF-8: invalid byte 0x{data[e.start]:02x} at offset {e.start} (line {line})",
                           file=path) from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ImiDataError(f"NUL character on line {line}", file=path)
    return text


def _validation_message(err: ValidationError) -> tuple[str, str | None]:
    """One line per problem, naming the field; input values are never echoed (they may be huge)."""
    parts, first = [], None
    for e in err.errors(include_url=False, include_input=False, include_context=False):
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        first = first or loc
        msg = "unknown field (not allowed)" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"field {loc!r}: {msg}")
    return "; ".join(parts), first


def load_meta(path: str | Path) -> SubmissionMeta:
    """Read and validate a ``meta.yaml`` (``yaml.safe_load`` only).

    Raises:
        ImiDataError: Missing, oversized, not UTF-8, not YAML, not a mapping, or failing the schema
            (every failing field is named).
    """
    path = Path(path)
    text = _decode(_read_limited(path, META_MAX_BYTES, "meta"), path)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ImiDataError(f"not valid YAML{where}: {getattr(e, 'problem', None) or e}", file=path) from None
    except RecursionError:
        raise ImiDataError("YAML nested too deeply", file=path) from None
    if not isinstance(raw, dict):
        raise ImiDataError(f"meta.yaml must be a mapping of fields, got {type(raw).__name__}", file=path)
    try:
        return SubmissionMeta.model_validate(raw)
    except ValidationError as e:
        message, field = _validation_message(e)
        raise ImiDataError(f"invalid meta: {message}", file=path, column=field) from None
    except RecursionError:
        raise ImiDataError("meta nested too deeply", file=path) from None


def _row_error(path: Path, frame: pd.DataFrame, bad: np.ndarray, column: str, problem: str) -> ImiDataError:
    rows = np.flatnonzero(bad)
    shown = ", ".join(f"row {i + 1}: {frame[column].iloc[i]!r}"[:120] for i in rows[:5])
    more = f" (and {len(rows) - 5} more)" if len(rows) > 5 else ""
    return ImiDataError(f"{problem} in {len(rows)} row(s): {shown}{more}", file=path, row=int(rows[0]) + 1,
                        column=column)


def _check_columns(frame: pd.DataFrame, path: Path) -> None:
    cols = [str(c) for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    unknown = [c for c in cols if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)]
    dups = sorted({c for c in cols if cols.count(c) > 1})
    if missing or unknown or dups:
        raise ImiDataError(f"columns must be {', '.join(REQUIRED_COLUMNS)} and optionally fold; "
                           f"missing {missing}, unknown {unknown}, duplicated {dups}", file=path)


def _parse_csv(data: bytes, path: Path) -> pd.DataFrame:
    text = _decode(data, path)
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OverflowError) as e:
        raise ImiDataError(f"cannot parse CSV: {str(e).strip()[:300]}", file=path) from None
    _check_columns(frame, path)
    for col in ("channel", "prediction"):
        raw = frame[col].str.strip()
        if col == "channel":
            bad = ~raw.str.fullmatch(r"\+?[0-9]{1,10}").to_numpy(bool)
            problem = "channel must be a non-negative integer"
        else:
            num = pd.to_numeric(raw, errors="coerce")
            bad = (num.isna() & ~raw.str.lower().isin(["nan", "+nan", "-nan"])).to_numpy(bool)
            problem = "prediction must be a number"
        if bad.any():
            raise _row_error(path, frame, bad, col, problem)
    frame["channel"] = frame["channel"].str.strip().astype(np.int64)
    frame["prediction"] = pd.to_numeric(frame["prediction"].str.strip(), errors="coerce").astype(float)
    return frame


def _parse_parquet(data: bytes, path: Path) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(io.BytesIO(data)).metadata
        if meta.num_rows > MAX_PARQUET_ROWS or meta.num_columns > 16:
            raise ImiDataError(f"Parquet file has {meta.num_rows:,} rows and {meta.num_columns} columns; the limits "
                               f"are {MAX_PARQUET_ROWS:,} rows and 16 columns", file=path)
        frame = pq.read_table(io.BytesIO(data)).to_pandas()
    except ImiDataError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, MemoryError) as e:
        raise ImiDataError(f"cannot read Parquet: {str(e).strip()[:300]}", file=path) from None
    _check_columns(frame, path)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object)
    channel, pred = frame["channel"], frame["prediction"]
    if not pd.api.types.is_integer_dtype(channel) or pd.api.types.is_bool_dtype(channel):
        raise ImiDataError(f"channel must have an integer type, got {channel.dtype}", file=path, column="channel")
    bad = ((channel < 0) | (channel > _MAX_CHANNEL)).to_numpy(bool)
    if bad.any():
        raise _row_error(path, frame, bad, "channel", f"channel must lie in [0, {_MAX_CHANNEL}]")
    if (not pd.api.types.is_numeric_dtype(pred) or pd.api.types.is_bool_dtype(pred)
            or pd.api.types.is_complex_dtype(pred)):
        raise ImiDataError(f"prediction must have a numeric type, got {pred.dtype}", file=path, column="prediction")
    frame["channel"] = channel.astype(np.int64)
    frame["prediction"] = pred.astype(float)
    return frame


def _check_strings(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    for col in _STRING_COLUMNS:
        if col not in frame.columns:
            continue
        values = frame[col]
        if pd.api.types.infer_dtype(values, skipna=False) != "string":
            bad = ~values.map(lambda v: isinstance(v, str)).to_numpy(bool)
            raise _row_error(path, frame, bad, col, f"{col} must be text")
        empty = (values.str.strip() == "").to_numpy(bool)
        if empty.any():
            raise _row_error(path, frame, empty, col, f"{col} is empty")
        frame[col] = values.astype(object)
    return frame


def read_predictions(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[pd.DataFrame, str]:
    """Read a predictions file (``.csv`` or ``.parquet``/``.pq``) and check its columns and types.

    Args:
        path: The file.
        max_bytes: Size limit, checked before reading.

    Returns:
        The type-checked predictions and the SHA-256 of the file's bytes.

    Raises:
        ImiDataError: Missing, oversized, not UTF-8 (CSV), unparsable, wrong columns or wrong types.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise ImiDataError("predictions must be a .csv or .parquet file", file=path)
    data = _read_limited(path, max_bytes, "predictions")
    frame = _parse_csv(data, path) if suffix == ".csv" else _parse_parquet(data, path)
    if frame.empty:
        raise ImiDataError("predictions file has no rows", file=path)
    frame = _check_strings(frame.reset_index(drop=True), path)
    return frame, hashlib.sha256(data).hexdigest()


def _predictions_path(meta: SubmissionMeta, meta_path: Path) -> Path:
    folder = meta_path.parent
    if meta.predictions is not None:
        return folder / meta.predictions
    found = [p for p in (folder / "predictions.csv", folder / "predictions.parquet") if p.is_file()]
    if len(found) != 1:
        what = "both" if found else "neither"
        raise ImiDataError(f"{folder} must hold exactly one of predictions.csv and predictions.parquet (it holds "
                           f"{what}), or meta.yaml must name the file in 'predictions:'", file=meta_path)
    return found[0]


def load_submission(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Submission:
    """Read a submission: a folder with ``meta.yaml``, or the path of a ``meta.yaml``.

    Args:
        path: The folder or the meta file.
        max_bytes: Size limit of the predictions file.

    Raises:
        ImiDataError: See :func:`load_meta` and :func:`read_predictions`.
    """
    path = Path(path)
    meta_path = path / "meta.yaml" if path.is_dir() else path
    meta = load_meta(meta_path)
    pred_path = _predictions_path(meta, meta_path)
    frame, sha = read_predictions(pred_path, max_bytes=max_bytes)
    return Submission(meta, meta_path, pred_path, frame, sha)
