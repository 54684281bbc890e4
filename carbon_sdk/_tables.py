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


def convert(table: pa.Table, as_: TableFormat) -> Any:
    """``table`` as a pandas DataFrame, a polars DataFrame, or unchanged (``"arrow"``)."""
    check_format(as_)
    if as_ == "arrow":
        return table
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
