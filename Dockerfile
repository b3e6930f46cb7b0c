# The project image, ghcr.io/titans-finance/titans:0.1.0: every Kubeflow Pipelines step runs in it
# (components/image.py), and the chart's Feast feature server, MLflow tracking server, retraining trigger and
# dashboard (the `dashboard` extra: Streamlit) too.
# Build from the repository root with `make images` (classic builder; needs --network host here).
# kfp inside is the SDK's own pin (uv.lock), so the component launcher's `pip install kfp==<sdk> --no-deps`
# is a no-op.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
# build/ca: this machine's CA bundle, for TLS to the package index from inside the build (stage only).
COPY build/ca/ /tmp/build-ca/
COPY images/build-venv.sh /usr/local/bin/build-venv
WORKDIR /app
# Dependencies first: this layer is reused while only our code changes.
COPY pyproject.toml uv.lock README.md ./
RUN build-venv --extra train --extra dashboard --no-install-project
COPY titans ./titans
COPY components ./components
COPY pipelines ./pipelines
COPY serving ./serving
COPY dashboard ./dashboard
RUN build-venv --extra train --extra dashboard

FROM ${BASE_IMAGE} AS app
RUN groupadd --gid 10001 titans \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin titans \
    && mkdir -p /var/titans && chown 10001:10001 /var/titans
# Root-owned and read-only for the step's user: a step writes only to /var/titans (the data volume) and /tmp.
COPY --from=build /app/.venv /app/.venv
COPY feature_repo /app/feature_repo
# The compiled pipeline the retraining trigger submits (not package data, so not in the venv).
COPY pipelines/compiled/ /app/pipelines/compiled/
# The export layouts the dashboard offers (docs/layouts; TITANS_LAYOUTS_DIR).
COPY docs/layouts/ /app/docs/layouts/
WORKDIR /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TITANS_HOME=/var/titans \
    TITANS_FEATURE_REPO=/app/feature_repo \
    TITANS_LAYOUTS_DIR=/app/docs/layouts \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001
VOLUME ["/var/titans"]
CMD ["titans", "--help"]

# The Spark image, ghcr.io/titans-finance/titans-spark:0.1.0 (`make images`: --target spark): the project image
# plus Debian's JRE and the `spark` extra (pyspark, py4j; only these two are added to the lock), so a
# SparkApplication's driver and executors run the very Python and packages of the lock (titans/spark_app.py).
# The entrypoint answers Spark's `driver` and `executor` pod arguments (images/spark-entrypoint.sh).
FROM build AS build-spark
RUN build-venv --extra train --extra dashboard --extra spark
WORKDIR /app/.venv
RUN mkdir /spark-site \
    && cp -a --parents lib/python3*/site-packages/pyspark lib/python3*/site-packages/pyspark-*.dist-info \
       lib/python3*/site-packages/py4j lib/python3*/site-packages/py4j-*.dist-info /spark-site/ \
    && ln -s "$(echo /app/.venv/lib/python3*/site-packages/pyspark)" /spark-site/spark-home

FROM app AS spark
USER 0
# The JRE's postinst links its man pages: a base image without /usr/share/man/man1 fails there.
# hadolint ignore=DL3008
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /usr/lib/jvm/titans-jre
COPY --from=build-spark /spark-site/lib/ /app/.venv/lib/
COPY --from=build-spark /spark-site/spark-home /opt/spark
COPY images/spark-entrypoint.sh /usr/local/bin/titans-spark-entrypoint
COPY images/spark-main.py /app/spark/main.py
COPY images/spark-natives.py /tmp/spark-natives.py
RUN /app/.venv/bin/python /tmp/spark-natives.py /opt/spark/jars /opt/spark/native && rm /tmp/spark-natives.py
# Every JVM of the image (driver, executors) loads the codecs' native libraries from the image, never from /tmp.
ENV JAVA_TOOL_OPTIONS="-Dorg.xerial.snappy.lib.path=/opt/spark/native -Dorg.xerial.snappy.lib.name=libsnappyjava.so -DZstdNativePath=/opt/spark/native/libzstd-jni.so" \
    JAVA_HOME=/usr/lib/jvm/titans-jre \
    SPARK_HOME=/opt/spark \
    PYSPARK_PYTHON=/app/.venv/bin/python \
    PYSPARK_DRIVER_PYTHON=/app/.venv/bin/python
USER 10001
ENTRYPOINT ["titans-spark-entrypoint"]
CMD ["titans", "--help"]
