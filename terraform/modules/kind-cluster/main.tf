# A local cluster in Docker. The control plane maps the ingress NodePort to the host so a laptop can call
# the models without a LoadBalancer; the kubeconfig goes to ~/.kube/kind-<name>.yaml (kind also merges it into ~/.kube/config).
resource "kind_cluster" "this" {
  name           = var.cluster_name
  node_image     = var.node_image
  wait_for_ready = true
  # Outside the repository: a kubeconfig holds client keys and must never be committed.
  kubeconfig_path = pathexpand("~/.kube/kind-${var.cluster_name}.yaml")

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"

    node {
      role = "control-plane"

      dynamic "extra_port_mappings" {
        for_each = var.ingress_host_port == 0 ? [] : [var.ingress_host_port]
        content {
          container_port = 31080
          host_port      = extra_port_mappings.value
          listen_address = "127.0.0.1"
        }
      }
    }

    dynamic "node" {
      for_each = range(var.worker_count)
      content {
        role = "worker"
      }
    }
  }
}
