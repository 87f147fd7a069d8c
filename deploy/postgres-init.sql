-- One database per system: Dagster and MLflow both have tables named `runs` and `alembic_version`.
-- POSTGRES_DB creates `dagster`; these are the other two.
CREATE DATABASE mlflow;
CREATE DATABASE feast;
