output "ingress" {
  description = "The Knative ingress in use (kourier or istio); the app enables JWT auth only with istio."
  value       = var.ingress
}

output "namespaces" {
  description = "Namespaces the platform runs in, for the chart's NetworkPolicy values."
  value = {
    knative = helm_release.knative_serving.namespace
    # The Knative Operator installs Kourier in the KnativeServing's own namespace (kourier-system is where
    # Kourier's standalone YAML puts it, which this module does not use).
    ingress    = var.ingress == "istio" ? "istio-system" : helm_release.knative_serving.namespace
    kserve     = helm_release.kserve.namespace
    monitoring = helm_release.kube_prometheus_stack.namespace
    pipelines  = "kubeflow"
    spark      = length(var.spark_job_namespaces) > 0 ? "spark-operator" : ""
  }
}

output "versions" {
  description = "The component versions installed."
  value       = var.versions
}
