output "values" {
  description = "The chart values as an object (merge more on top if needed)."
  value       = local.values
}

output "values_yaml" {
  description = "The chart values as YAML, ready for helm_release.values."
  value       = yamlencode(local.values)
}

output "canaries" {
  description = "Models with a canary in flight: name -> share of traffic on the newest revision."
  value       = { for name, m in local.models : name => m.canaryTrafficPercent if can(m.canaryTrafficPercent) }
}

output "pipeline_runner_annotations" {
  description = "Annotations for KFP's pipeline-runner ServiceAccount (the pipeline role, when given): KFP owns that account, so the chart cannot set them; docs/deploying.md's production steps apply them with kubectl annotate."
  value       = { for arn in compact([lookup(var.service_account_role_arns, "pipeline", "")]) : "eks.amazonaws.com/role-arn" => arn }
}
