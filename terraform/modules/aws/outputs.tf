output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name <this>)."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "EKS API server URL."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_ca_certificate" {
  description = "EKS cluster CA (base64 PEM), for the helm provider of the platform and app modules."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "artifact_bucket" {
  description = "S3 bucket for models (models/), MLflow artifacts (mlflow/) and the Feast registry (feast/)."
  value       = aws_s3_bucket.artifacts.bucket
}

output "chart_object_store" {
  description = "object_store input for modules/chart-values."
  value = {
    region         = data.aws_region.current.name
    models_prefix  = "s3://${aws_s3_bucket.artifacts.bucket}/models"
    mlflow_prefix  = "s3://${aws_s3_bucket.artifacts.bucket}/mlflow"
    feast_registry = "s3://${aws_s3_bucket.artifacts.bucket}/feast/registry.db"
  }
}

output "service_account_role_arns" {
  description = "IRSA role ARNs (inference, mlflow, feast, pipeline) for the ServiceAccount annotations."
  value       = { for k, r in aws_iam_role.irsa : k => r.arn }
}

output "db_endpoint" {
  description = "RDS PostgreSQL address:port for the MLflow and Feast registry connection URLs."
  value       = aws_db_instance.this.endpoint
}

output "db_master_secret_arn" {
  description = "Secrets Manager ARN of the RDS-managed master credentials (never in Terraform state)."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
