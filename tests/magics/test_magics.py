"""The SQL magics and the placeholder story against the stack's real PostgreSQL and Trino, in a
real IPython shell and in a real kernel (nbclient)."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator

import nbformat
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from IPython.core.interactiveshell import InteractiveShell
from nbclient import NotebookClient

from carbon_sdk import postgres, trino
from carbon_sdk.dev.pytest_plugin import StackEnv
from carbon_sdk.errors import ConfigurationError
from carbon_sdk.settings.carbon import configure

pytestmark = pytest.mark.stack

EVIL = "x'); drop table victims; -- $1 :name %s ? \\"


@pytest.fixture
def both(stack_env: StackEnv) -> None:
    stack_env("postgres", "trino")


@pytest.fixture
def shell(both: None) -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "carbon_sdk")
    yield shell
    shell.run_line_magic("unload_ext", "carbon_sdk")


def cell(shell: InteractiveShell, source: str) -> object:
    result = shell.run_cell(source)
    result.raise_error()
    return result.result


# ---- the placeholder story, through the connectors ----------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        ("select current_query() as q, $1::text as v, $2::int as n", (EVIL, 7)),
        ("select current_query() as q, %s::text as v, %s::int as n", [EVIL, 7]),
        ("select current_query() as q, %(v)s::text as v, %(n)s::int as n", {"v": EVIL, "n": 7}),
        ("select current_query() as q, :v::text as v, :n::int as n", {"v": EVIL, "n": 7}),
    ],
)
def test_postgres_binds_every_style_on_the_server(both: None, sql: str, params: object) -> None:
    row = postgres.query(sql, params).iloc[0]  # type: ignore[arg-type]
    assert row["v"] == EVIL and row["n"] == 7
    assert "$1" in row["q"] and "drop table" not in row["q"]  # the server got placeholders


def test_postgres_percent_escape_and_literals(both: None) -> None:
    sql = "select 7 %% 4 as m, '%%s :x' as lit, %(a)s::int as a"
    row = postgres.query(sql, {"a": 1}).iloc[0]
    assert (row["m"], row["lit"], row["a"]) == (3, "%%s :x", 1)
    iterated = list(postgres.iter_batches("select :a::int as a", {"a": 5}))
    assert iterated[0].column("a").to_pylist() == [5]


def test_trino_binds_a_mapping_through_a_prepared_statement(both: None) -> None:
    marker = uuid.uuid4().hex
    sql = f"select :v as v, :n + 1 as n, ':v' as lit, '{marker}' as marker"
    row = trino.query(sql, {"v": EVIL, "n": 41}).iloc[0]
    assert (row["v"], row["n"], row["lit"]) == (EVIL, 42, ":v")
    assert trino.query("select ? as v", (EVIL,)).loc[0, "v"] == EVIL
    ran = trino.query(
        "select query from system.runtime.queries "
        f"where query like '%{marker}%' and query not like '%system.runtime%'"
    )
    assert any("?" in q and EVIL not in q for q in ran["query"]), list(ran["query"])


def test_query_results_carry_their_report(both: None) -> None:
    configure(trino={"ui_url": "https://trino.example.org"})
    frame = trino.query("select * from tpch.tiny.nation")
    report = frame.attrs["carbon"]
    assert report["service"] == "trino" and report["rows"] == 25 and report["elapsed_s"] > 0
    assert report["url"] == f"https://trino.example.org/ui/query.html?{report['query_id']}"
    assert postgres.query("select 1 as one").attrs["carbon"]["rows"] == 1


# ---- the magics in an IPython shell -----------------------------------------------------------


def test_postgres_magic_binds_notebook_variables(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    shell.user_ns.update(limit=3, label=EVIL)
    out = cell(
        shell,
        "%%postgres -o rows\n"
        "select g as n, :label::text as label, '::x :limit' as lit\n"
        "from generate_series(1, 10) g where g <= :limit -- :nothing\n",
    )
    assert isinstance(out, pd.DataFrame)
    assert shell.user_ns["rows"] is out
    assert list(out["n"]) == [1, 2, 3] and set(out["label"]) == {EVIL}
    assert set(out["lit"]) == {"::x :limit"}
    assert "postgres: 3 rows in" in capsys.readouterr().out  # the header line, as text here


@pytest.mark.parametrize(("as_", "kind"), [("arrow", pa.Table), ("polars", pl.DataFrame)])
def test_trino_magic_formats_and_header(
    shell: InteractiveShell, capsys: pytest.CaptureFixture[str], as_: str, kind: type
) -> None:
    shell.user_ns["region"] = 1
    out = cell(
        shell,
        f"%%trino --as {as_}\nselect name from tpch.tiny.nation where regionkey = :region;\n",
    )
    assert isinstance(out, kind) and len(out) == 5
    printed = capsys.readouterr().out
    assert "trino: 5 rows in" in printed and ", query 20" in printed


def test_a_missing_variable_is_named(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%trino\nselect :no_such_variable_here")
    assert isinstance(result.error_in_exec, ConfigurationError)
    assert ":no_such_variable_here" in str(result.error_in_exec)


def test_query_errors_reach_the_cell(shell: InteractiveShell) -> None:
    result = shell.run_cell("%%postgres\nselect * from no_such_table")
    assert "no_such_table" in str(result.error_in_exec)


def test_interrupting_a_trino_cell_cancels_the_query(shell: InteractiveShell) -> None:
    marker = uuid.uuid4().hex
    timer = threading.Timer(
        2.0, signal.pthread_kill, (threading.main_thread().ident, signal.SIGINT)
    )
    timer.start()
    result = shell.run_cell(
        f"%%trino\nselect count(*) from tpch.sf100.lineitem where comment <> '{marker}'"
    )
    timer.join()
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    lookup = (
        "select state, error_code from system.runtime.queries "
        f"where query like '%{marker}%' and query not like '%system.runtime%'"
    )
    deadline = time.monotonic() + 20
    while (found := trino.query(lookup)).empty or found.loc[0, "state"] not in (
        "FAILED",
        "FINISHED",
    ):
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert (found.loc[0, "state"], found.loc[0, "error_code"]) == ("FAILED", "USER_CANCELED")


# ---- in a real kernel -------------------------------------------------------------------------


def test_magics_in_a_kernel(both: None) -> None:
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("%load_ext carbon_sdk\nn = 2"),
            nbformat.v4.new_code_cell("%%postgres -o pg\nselect g from generate_series(1, :n) g"),
            nbformat.v4.new_code_cell("%%trino\nselect count(*) as c from tpch.tiny.nation"),
            nbformat.v4.new_code_cell("pg['g'].tolist(), pg.attrs['carbon']['rows']"),
        ]
    )
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    for executed in notebook.cells[1:3]:
        shown = [o for o in executed.outputs if "data" in o]  # not a (delayed) progress bar
        header, table = shown
        assert "rows in" in header["data"]["text/html"]
        assert "<table" in table["data"]["text/html"]
        assert not [o for o in executed.outputs if o.get("name") == "stderr"]  # quick: no bar
    assert notebook.cells[3].outputs[0]["data"]["text/plain"] == "([1, 2], 2)"


def test_tab_completes_trino_names_in_trino_cells(shell: InteractiveShell) -> None:
    from IPython.core.completer import provisionalcompleter

    def complete(text: str) -> set[str]:
        with provisionalcompleter():
            return {c.text for c in shell.Completer.completions(text, len(text))}

    assert "tpch" in complete("%%trino\nselect * from tp")
    assert {"tpch.tiny", "tpch.sf1"} <= complete("%%trino\nselect * from tpch.")
    assert "tpch.tiny.nation" in complete("%%trino\nselect * from tpch.tiny.na")
    assert "tpch.tiny.nation" not in complete("%%postgres\nselect * from tpch.tiny.na")
