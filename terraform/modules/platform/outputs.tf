output "ingress" {
  description = "The Knative ingress in use (kourier or istio); the app enables JWT auth only with istio."
  value       = var.ingress
}

output "namespaces" {
  description = "Namespaces the platform runs in, for the chart's NetworkPolicy values."
  value = {
    knative    = helm_release.knative_serving.namespace
    ingress    = var.ingress == "istio" ? "istio-system" : "kourier-system"
    kserve     = helm_release.kserve.namespace
    monitoring = helm_release.kube_prometheus_stack.namespace
    pipelines  = "kubeflow"
  }
}

output "versions" {
  description = "The component versions installed."
  value       = var.versions
}
