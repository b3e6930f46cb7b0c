output "cluster_name" {
  description = "EKS cluster name."
  value       = module.aws.cluster_name
}

output "chart_object_store" {
  description = "Object store settings for the chart (modules/chart-values object_store)."
  value       = module.aws.chart_object_store
}

output "service_account_role_arns" {
  description = "IRSA role ARNs for the chart's ServiceAccounts."
  value       = module.aws.service_account_role_arns
}

output "db_endpoint" {
  description = "PostgreSQL endpoint for the MLflow and Feast registry Secrets."
  value       = module.aws.db_endpoint
}

output "db_master_secret_arn" {
  description = "Where RDS keeps the master credentials."
  value       = module.aws.db_master_secret_arn
}
