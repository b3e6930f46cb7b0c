# The Titans chart as a Helm release. The chart's values.schema.json is the gate: a bad canary share or a
# missing Secret name fails the plan's render before anything reaches the cluster.
resource "helm_release" "titans" {
  name             = var.release_name
  chart            = coalesce(var.chart_path, "${path.module}/../../../helm/titans-finance")
  namespace        = var.namespace
  create_namespace = true
  atomic           = true
  cleanup_on_fail  = true
  wait             = true
  timeout          = var.timeout_seconds

  values = concat(
    [yamlencode(var.values)],
    [for f in var.extra_values_files : file(f)],
  )
}
