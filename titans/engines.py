"""Which engine runs the data plane (ingest, the feature snapshots): pandas in this process, or Spark.

Why a choice at all: one process holds a business's export, or a few million rows; a firm's hundred
million to a billion transactions need a distributed engine. Spark is the one Feast, the Kubeflow
Spark Operator and the platforms our users run already support, so the large user finds the same
pipeline there. Why pandas stays the default: a Spark session costs 11-15 s to start and a JVM's
memory, which a 127-row export must never pay; pyspark is an optional extra (``spark``) and the JRE
a system package, so nothing here imports pyspark until a Spark engine is asked for.

The Spark session is configured for what our tables need, whatever the master:
- the session time zone is UTC (the clean table's days are UTC days; a local zone would shift them);
- the workers run this interpreter (``PYSPARK_PYTHON``), else they start the system Python, which has
  no pandas;
- nanosecond parquet timestamps (the clean table's ``date``) read as longs instead of failing
  (``PARQUET_TYPE_ILLEGAL``); the readers convert them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from typing import Any

from titans.errors import UserError

ENGINES = ("pandas", "spark")
DEFAULT_ENGINE = "pandas"
DEFAULT_SPARK_MASTER = "local[*]"
ENGINE_ENV = "TITANS_ENGINE"
SPARK_MASTER_ENV = "TITANS_SPARK_MASTER"
# Local sessions share the machine with the Python workers they start: a quarter of it for the JVM
# keeps both inside a pod's limit; a cluster sets spark.driver.memory itself.
LOCAL_DRIVER_MEMORY = "2g"
# Set by spark-submit for the Python driver it launches: the session is the submission's, not ours to configure.
SUBMITTED_ENV = "PYSPARK_GATEWAY_PORT"


def engine_name(value: str | None = None) -> str:
    """The engine asked for: the argument, else ``TITANS_ENGINE``, else pandas; anything else is an error."""
    name = (value or os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE).strip().lower()
    if name not in ENGINES:
        raise UserError(f"engine {name!r}: expected one of {', '.join(ENGINES)}")
    return name


def spark_master(value: str | None = None) -> str:
    """The Spark master: the argument, else ``TITANS_SPARK_MASTER``, else ``local[*]``."""
    return (value or os.environ.get(SPARK_MASTER_ENV) or DEFAULT_SPARK_MASTER).strip()


def spark_available() -> str | None:
    """Why a Spark session cannot start here (no pyspark, no Java), or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: install the `spark` extra (uv sync --extra spark)"
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and os.path.exists(os.path.join(java_home, "bin", "java"))) and not shutil.which("java"):
        return "no Java runtime: install a JRE (Debian: apt install openjdk-17-jre-headless)"
    return None


def spark_read_path(path: str | os.PathLike[str]) -> str:
    """A local path as Spark's readers take it literally: Hadoop reads ``[ ] { } * ?`` in a path as a glob
    (a home named ``spark-local[1]`` matched nothing), so they are escaped."""
    text = os.fspath(path)
    return "".join("\\" + c if c in "[]{}*?\\" else c for c in text)


def use_this_python() -> None:
    """Make Spark's Python workers (and a driver it launches) run this interpreter, unless one is exported.

    Why the environment: pyspark's driver hands its workers ``PYSPARK_PYTHON`` and nothing from the session's
    configuration, so a session Feast starts from a store yaml's ``spark_conf`` needs it exported too; without
    it the workers start the system Python, which has no pandas.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def spark_session(master: str | None = None, app_name: str = "titans") -> Any:
    """A Spark session for the data plane (the existing one when it is already running).

    The import is here, not at the top: pyspark is an optional extra, and a pandas run never loads it.
    """
    missing = spark_available()
    if missing:
        raise UserError(f"--engine spark: {missing}")
    use_this_python()
    from pyspark.sql import SparkSession

    if SUBMITTED_ENV in os.environ:
        # Started by spark-submit (a SparkApplication's driver): the master, memory and addresses are the
        # submission's; only the table settings are ours.
        chosen, builder = "", SparkSession.builder.appName(app_name)
    else:
        chosen = spark_master(master)
        if chosen.startswith("local"):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # the JVM's own sockets on loopback too
        builder = SparkSession.builder.master(chosen).appName(app_name)
    builder = (builder
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.legacy.parquet.nanosAsLong", "true")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false"))
    if chosen.startswith("local"):
        # A local session listens on loopback only; on a cluster the executors must reach the driver.
        builder = (builder.config("spark.driver.memory", LOCAL_DRIVER_MEMORY)
                   .config("spark.driver.bindAddress", "127.0.0.1").config("spark.driver.host", "127.0.0.1"))
    return builder.getOrCreate()
