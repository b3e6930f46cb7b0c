output "cluster_name" {
  description = "The kind cluster's name."
  value       = kind_cluster.this.name
}

output "kube_context" {
  description = "The kubectl context kind creates for the cluster."
  value       = "kind-${kind_cluster.this.name}"
}

output "kubeconfig_path" {
  description = "Path of the kubeconfig file for this cluster."
  value       = kind_cluster.this.kubeconfig_path
}

output "endpoint" {
  description = "The API server URL."
  value       = kind_cluster.this.endpoint
}

output "client_certificate" {
  description = "Client certificate for the API server (PEM)."
  value       = kind_cluster.this.client_certificate
}

output "client_key" {
  description = "Client key for the API server (PEM)."
  value       = kind_cluster.this.client_key
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "The cluster CA certificate (PEM)."
  value       = kind_cluster.this.cluster_ca_certificate
}
