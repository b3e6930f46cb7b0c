#!/bin/bash
# Entrypoint of the Spark image (Dockerfile target `spark`): what a Spark-on-Kubernetes pod asks of its image.
#
# Why our own: Spark starts a driver pod with the arguments `driver --properties-file ... --class ... <main>
# <args>` and executor pods with `executor` and their settings in env (SPARK_DRIVER_URL, SPARK_EXECUTOR_*,
# SPARK_JAVA_OPT_<n>); Apache's Spark images answer these with their entrypoint, our image (the project's, plus
# a JRE and pyspark from the lock) needs the same answer. Anything else runs as given (`titans ...`).
set -euo pipefail

case "${1:-}" in
driver)
    shift
    # spark-submit in client mode inside the driver pod, listening on the pod's address.
    exec "$SPARK_HOME/bin/spark-submit" \
        --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-127.0.0.1}" \
        --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS:-127.0.0.1}" \
        --deploy-mode client "$@"
    ;;
executor)
    shift
    # The JVM options Spark hands an executor, in their numbered order.
    java_opts=()
    while IFS='=' read -r _ value; do
        java_opts+=("$value")
    done < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n)
    exec "$JAVA_HOME/bin/java" "${java_opts[@]}" \
        -Xms"$SPARK_EXECUTOR_MEMORY" -Xmx"$SPARK_EXECUTOR_MEMORY" \
        -cp "${SPARK_CONF_DIR:-$SPARK_HOME/conf}:$SPARK_HOME/jars/*${SPARK_CLASSPATH:+:$SPARK_CLASSPATH}" \
        org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
        --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES" \
        --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP" \
        --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "${SPARK_EXECUTOR_POD_NAME:-}" "$@"
    ;;
*)
    exec "$@"
    ;;
esac
