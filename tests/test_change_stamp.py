"""The SQLite change stamp: readers reload exactly when a writer in any process has touched it."""

from __future__ import annotations

from monitoring.budget_store import CallScope
from monitoring.budgets import BudgetService, BudgetSpec
from storage.change_stamp import ChangeStamp, StampedCache
from storage.database import create_db_engine, upgrade_schema


def test_a_cached_value_is_reloaded_only_after_a_touch(tmp_path):
    engine = create_db_engine(f"sqlite:///{tmp_path / 'stamp.db'}")
    loads = []
    cache = StampedCache(ChangeStamp(engine, "topic"), lambda: loads.append(1) or len(loads))
    assert [cache.get(), cache.get()] == [1, 1]
    ChangeStamp(engine, "topic").touch()  # another process's stamp object on the same file
    assert [cache.get(), cache.get()] == [2, 2]


def test_a_budget_made_by_another_process_applies_to_the_next_call(tmp_path):
    url = f"sqlite:///{tmp_path / 'budgets.db'}"
    here, elsewhere = create_db_engine(url), create_db_engine(url)
    upgrade_schema(here)
    scope = CallScope("some-model")
    mine = BudgetService(here)
    assert mine.applicable(scope) == []  # now cached
    BudgetService(elsewhere).create(BudgetSpec(name="cap", scope="global", period="daily", limit_usd=1))
    assert [b["name"] for b in mine.applicable(scope)] == ["cap"]


def test_postgres_and_memory_databases_have_no_stamp_and_always_read():
    assert ChangeStamp(create_db_engine("sqlite://"), "budgets").version() is None
    assert ChangeStamp(create_db_engine("postgresql://u@127.0.0.1:1/x"), "budgets").version() is None
