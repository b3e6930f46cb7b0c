# Inputs -> the chart's values, with the Terraform-side names mapped to the chart's. Kept free of
# providers so `terraform test` checks the mapping and the validation offline.

locals {
  model_names = ["category", "amount", "anomaly", "cashflow"]

  image = { for name, repo in {
    serving  = "ghcr.io/titans-finance/titans-serving"
    pipeline = "ghcr.io/titans-finance/titans"
    } : name => {
    repository = repo
    tag        = var.image_tag
    digest     = lookup(var.image_digests, name, "")
    pullPolicy = "IfNotPresent"
  } }

  models = { for name in local.model_names : name => merge(
    {
      enabled     = try(var.models[name].enabled, false)
      version     = try(var.models[name].version, "1")
      minReplicas = try(var.models[name].min_replicas, 1)
      maxReplicas = try(var.models[name].max_replicas, 3)
      resources   = {}
    },
    # Only a set canary reaches the chart: an absent key means "all traffic to the newest revision".
    { for k, v in { canaryTrafficPercent = try(var.models[name].canary_traffic_percent, null) } : k => v if v != null },
  ) }

  role_annotations = { for name in ["inference", "feast", "mlflow"] : name => {
    for arn in compact([lookup(var.service_account_role_arns, name, "")]) : "eks.amazonaws.com/role-arn" => arn
  } }

  values = {
    images = {
      serving  = local.image.serving
      pipeline = local.image.pipeline
    }
    objectStore = {
      endpoint       = var.object_store.endpoint
      region         = var.object_store.region
      existingSecret = var.object_store.existing_secret
    }
    serving = {
      storageUriPrefix = var.object_store.models_prefix
      serviceAccount   = { annotations = local.role_annotations.inference }
    }
    models = local.models
    feast = {
      serviceAccount = { annotations = local.role_annotations.feast }
      registry = var.postgres_secrets.feast_registry == null ? {
        type = "file", path = var.object_store.feast_registry, existingSecret = "", secretKey = "registry-url"
        } : {
        type = "sql", path = "", existingSecret = var.postgres_secrets.feast_registry, secretKey = "registry-url"
      }
      redis = {
        enabled        = true
        existingSecret = var.redis_password_secret
      }
    }
    mlflow = {
      serviceAccount       = { annotations = local.role_annotations.mlflow }
      artifactsDestination = var.object_store.mlflow_prefix
      backendStore = var.postgres_secrets.mlflow == null ? {
        type = "sqlite", existingSecret = "", secretKey = "uri"
        } : {
        type = "postgresql", existingSecret = var.postgres_secrets.mlflow, secretKey = "uri"
      }
    }
    pipelineRunner = {
      namespace = var.pipeline_namespace
    }
    networkPolicy = {
      inferenceFromNamespaces = var.inference_from_namespaces
      pipelineNamespace       = var.pipeline_namespace
    }
    auth = {
      istio = {
        enabled = var.jwt != null
        jwt = {
          issuer    = try(var.jwt.issuer, "")
          jwksUri   = try(var.jwt.jwks_uri, "")
          audiences = try(var.jwt.audiences, [])
        }
      }
    }
  }
}
