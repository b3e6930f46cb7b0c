output "kube_context" {
  description = "kubectl context of the new cluster."
  value       = module.cluster.kube_context
}

output "kubeconfig_path" {
  description = "Kubeconfig file of the new cluster."
  value       = module.cluster.kubeconfig_path
}

output "platform_versions" {
  description = "Versions of the platform components installed."
  value       = module.platform.versions
}

output "canaries" {
  description = "Models with a canary in flight when deploy_app is true."
  value       = module.chart_values.canaries
}
