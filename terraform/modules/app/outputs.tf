output "release" {
  description = "Name, namespace, chart version and revision of the installed release."
  value = {
    name      = helm_release.titans.name
    namespace = helm_release.titans.namespace
    version   = helm_release.titans.version
    revision  = helm_release.titans.metadata[0].revision
  }
}

output "inference_services" {
  description = "The InferenceServices the chart manages (docs/contracts.md names)."
  value       = [for m in ["category", "amount", "anomaly", "cashflow"] : "titans-${m}"]
}
