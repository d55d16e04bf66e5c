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
    with pytest.raises(ArtifactError, match="older featgeom .*replicate, null_kind.*new output directory"):
        ResultsDB(path)


def test_rows_may_leave_out_the_defaulted_columns(tmp_path):
    db = ResultsDB(tmp_path / "results.sqlite")
    row = {"experiment": "x", "config_hash": "h", "condition": "c", "swept_variable": "v", "swept_value": 1.0,
           "member_a": "base", "member_b": "c", "seed_a": 0, "seed_b": 0, "pairing": "", "metric": "m",
           "value": 1.0, "p_value": None, "null_mean": None, "null_std": None, "featgeom_version": "0",
           "sae_lens_version": "0"}
    assert db.record_job("h", "job", "compare", 1.0, {}, [row])
    (stored,) = db.results("h")
    assert stored["replicate"] == 0 and stored["null_kind"] == "" and stored["note"] == ""
