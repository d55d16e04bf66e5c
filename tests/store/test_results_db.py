"""The results database refuses files it cannot read correctly."""

import sqlite3

import pytest

from featgeom.errors import ArtifactError
from featgeom.store.results import ResultsDB


def test_a_database_of_an_older_schema_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "results.sqlite"
    with sqlite3.connect(path) as con:  # the schema before the null_kind and replicate columns
        con.execute("CREATE TABLE results (experiment TEXT, config_hash TEXT, condition TEXT, swept_variable TEXT, "
                    "swept_value REAL, member_a TEXT, member_b TEXT, seed_a INTEGER, seed_b INTEGER, pairing TEXT, "
                    "metric TEXT, value REAL, p_value REAL, null_mean REAL, null_std REAL, note TEXT, "
                    "featgeom_version TEXT, sae_lens_version TEXT)")
    with pytest.raises(ArtifactError, match="older featgeom .*analysis, condition_json, replicate, null_kind.*new output directory"):
        ResultsDB(path)


def test_rows_may_leave_out_the_defaulted_columns(tmp_path):
    db = ResultsDB(tmp_path / "results.sqlite")
    row = {"experiment": "x", "config_hash": "h", "analysis": "recovery", "condition": "c", "condition_json": "{}",
           "member_a": "base", "member_b": "c", "seed_a": 0, "seed_b": 0, "pairing": "", "metric": "m",
           "value": 1.0, "p_value": None, "null_mean": None, "null_std": None, "featgeom_version": "0",
           "sae_lens_version": "0"}
    assert db.record_job("h", "job", "compare", 1.0, {}, [row])
    (stored,) = db.results("h")
    assert stored["replicate"] == 0 and stored["null_kind"] == "" and stored["note"] == ""


def rows_of_two_analyses() -> list[dict]:
    common = {"experiment": "x", "config_hash": "h", "member_a": "base", "member_b": "base", "seed_a": 0, "seed_b": 1,
              "pairing": "", "metric": "mcc", "value": 0.5, "p_value": None, "null_mean": None, "null_std": None,
              "featgeom_version": "0", "sae_lens_version": "0"}
    return [{**common, "analysis": "recovery", "condition": "arch=topk", "condition_json": '{"sae.arch": "topk"}'},
            {**common, "analysis": "sae_pairs", "condition": "arch=topk vs relu",
             "condition_json": '{"sae.arch": ["topk", "relu"]}', "value": 0.25}]


def test_one_row_per_measurement_keyed_by_analysis_and_condition(tmp_path):
    """The same metric at the same seeds is two measurements when the analysis or the condition differ."""
    db = ResultsDB(tmp_path / "results.sqlite")
    assert db.record_job("h", "job", "x", 1.0, {}, rows_of_two_analyses())
    assert [(r["analysis"], r["value"]) for r in db.results("h")] == [("recovery", 0.5), ("sae_pairs", 0.25)]


def test_parquet_export_keeps_every_row_and_its_types(tmp_path):
    import pyarrow.parquet as pq

    db = ResultsDB(tmp_path / "results.sqlite")
    db.record_job("h", "job", "x", 1.0, {}, rows_of_two_analyses())
    table = pq.read_table(db.export_parquet(tmp_path / "results.parquet"))
    assert table.num_rows == 2 and str(table.schema.field("value").type) == "double"
    assert str(table.schema.field("seed_b").type) == "int64" and table.column("p_value").null_count == 2
    assert table.column("condition_json").to_pylist() == ['{"sae.arch": "topk"}', '{"sae.arch": ["topk", "relu"]}']
