"""The 0005 migration creates exactly the experiment tables that storage/experiment_tables.py declares."""

from __future__ import annotations

from sqlalchemy import UniqueConstraint, inspect

from ab_testing import tables as experiment_tables

TABLES = [experiment_tables.experiments, experiment_tables.experiment_variants,
          experiment_tables.experiment_assignments, experiment_tables.experiment_exposures,
          experiment_tables.experiment_results, experiment_tables.experiment_metric_values]


def _sql_type(type_, dialect) -> str:
    """The type as the database spells it; PostgreSQL reflects FLOAT as its synonym DOUBLE PRECISION."""
    return type_.compile(dialect=dialect).replace("DOUBLE PRECISION", "FLOAT")


def test_migrated_tables_match_metadata(engine):
    inspector = inspect(engine)
    for table in TABLES:
        _assert_matches(inspector, engine.dialect, table)


def _assert_matches(inspector, dialect, table) -> None:
    migrated = {c["name"]: c for c in inspector.get_columns(table.name)}
    assert list(migrated) == [c.name for c in table.columns]
    for column in table.columns:
        assert migrated[column.name]["nullable"] == column.nullable, column.name
        assert _sql_type(migrated[column.name]["type"], dialect) == _sql_type(column.type, dialect)
    indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(table.name)
               if "duplicates_constraint" not in i}  # PostgreSQL lists the index behind each UNIQUE
    assert indexes == {i.name: [c.name for c in i.columns] for i in table.indexes}
    uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
    declared_uniques = {tuple(c.name for c in con.columns) for con in table.constraints
                        if isinstance(con, UniqueConstraint)}
    declared_uniques |= {(c.name,) for c in table.columns if c.unique}
    assert uniques == declared_uniques
    foreign = {(tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table.name)}
    assert foreign == {((fk.parent.name,), fk.column.table.name) for fk in table.foreign_keys}
