"""Arrow is the one in-memory table format: every ``as_=`` parameter converts from it here.

Connectors read into :class:`pyarrow.Table` (or record batches) by their fastest native path and
call :func:`convert`; writers accept pandas, polars or Arrow and call :func:`to_arrow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

from carbon_sdk._lazy import import_client

if TYPE_CHECKING:
    import pyarrow as pa

TableFormat = Literal["pandas", "arrow", "polars"]
FORMATS: tuple[str, ...] = get_args(TableFormat)


def check_format(as_: str) -> None:
    """Raise a ValueError naming the accepted formats unless ``as_`` is one of them."""
    if as_ not in FORMATS:
        raise ValueError(f"as_={as_!r} is not a table format; use one of: {', '.join(FORMATS)}")


def _pandas_types_mapper() -> Any:
    """Integers and booleans become pandas' nullable dtypes, so NULLs do not turn them into
    floats or objects; every other Arrow type keeps pandas' default conversion."""
    pa_mod = import_client("pyarrow", "tables")
    pd = import_client("pandas", "tables")
    nullable = {
        pa_mod.int8(): pd.Int8Dtype(),
        pa_mod.int16(): pd.Int16Dtype(),
        pa_mod.int32(): pd.Int32Dtype(),
        pa_mod.int64(): pd.Int64Dtype(),
        pa_mod.uint8(): pd.UInt8Dtype(),
        pa_mod.uint16(): pd.UInt16Dtype(),
        pa_mod.uint32(): pd.UInt32Dtype(),
        pa_mod.uint64(): pd.UInt64Dtype(),
        pa_mod.bool_(): pd.BooleanDtype(),
    }
    return nullable.get


def _uuid_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """An ``arrow.uuid`` column as canonical ``xxxxxxxx-xxxx-...`` strings, NULLs kept.

    Vectorised with NumPy: pyarrow's own conversion builds one ``uuid.UUID`` per value, which
    costs seconds per million rows.
    """
    np = import_client("numpy", "tables")
    pa_mod = import_client("pyarrow", "tables")
    pc = import_client("pyarrow.compute", "tables")
    hex_pairs = np.array([f"{i:02x}" for i in range(256)], dtype="S2").view(np.uint8)
    hex_pairs = hex_pairs.reshape(256, 2)
    digits_at = [i for i in range(36) if i not in (8, 13, 18, 23)]
    chunks = []
    for chunk in column.chunks:
        storage = chunk.storage  # fixed_size_binary(16)
        n = len(storage)
        raw = np.frombuffer(storage.buffers()[1], np.uint8, n * 16, storage.offset * 16)
        out = np.full((n, 36), ord("-"), np.uint8)
        out[:, digits_at] = hex_pairs[raw.reshape(n, 16)].reshape(n, 32)
        fixed = pa_mod.FixedSizeBinaryArray.from_buffers(
            pa_mod.binary(36), n, [None, pa_mod.py_buffer(out)]
        )
        text = fixed.cast(pa_mod.string())
        chunks.append(pc.if_else(storage.is_null(), pa_mod.scalar(None, pa_mod.string()), text))
    return pa_mod.chunked_array(chunks, pa_mod.string())


def _dataframe_ready(table: pa.Table) -> pa.Table:
    """Arrow types DataFrames have no equivalent of, as text: uuid (pandas and polars have no
    uuid dtype; Arrow output keeps the ``arrow.uuid`` type)."""
    pa_mod = import_client("pyarrow", "tables")
    for index, field in enumerate(table.schema):
        if isinstance(field.type, pa_mod.UuidType):
            text = _uuid_text(table.column(index))
            table = table.set_column(index, field.with_type(text.type), text)
    return table


def convert(table: pa.Table, as_: TableFormat) -> Any:
    """``table`` as a pandas DataFrame, a polars DataFrame, or unchanged (``"arrow"``).

    In DataFrames, integers and booleans with NULLs use nullable dtypes and uuids are text.
    """
    check_format(as_)
    if as_ == "arrow":
        return table
    table = _dataframe_ready(table)
    if as_ == "polars":
        return import_client("polars", "polars").from_arrow(table)
    return table.to_pandas(types_mapper=_pandas_types_mapper())


def to_arrow(data: Any) -> pa.Table:
    """A pandas or polars DataFrame, or an Arrow table/batch, as a :class:`pyarrow.Table`.

    Raises TypeError for anything else, and for pandas columns Arrow cannot type (e.g. mixed
    Python objects), naming the column.
    """
    pa_mod = import_client("pyarrow", "tables")
    if isinstance(data, pa_mod.Table):
        return data
    if isinstance(data, pa_mod.RecordBatch):
        return pa_mod.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        table: pa.Table = data.to_arrow()
        return table
    if module == "pandas":
        try:
            converted: pa.Table = pa_mod.Table.from_pandas(data, preserve_index=False)
        except (pa_mod.ArrowInvalid, pa_mod.ArrowTypeError, pa_mod.ArrowNotImplementedError) as exc:
            raise TypeError(f"cannot convert this DataFrame to Arrow: {exc}") from None
        return converted
    raise TypeError(f"expected a pandas/polars DataFrame or a pyarrow Table, got {type(data)!r}")
