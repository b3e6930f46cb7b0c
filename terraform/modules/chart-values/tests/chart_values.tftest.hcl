# Offline unit tests of the inputs -> chart values mapping (terraform test; no providers involved).

run "defaults_send_all_traffic_to_the_newest_revision" {
  command = plan

  assert {
    condition     = length(output.canaries) == 0
    error_message = "No canary should be set by default."
  }

  assert {
    condition     = alltrue([for m in values(output.values.models) : !can(m.canaryTrafficPercent)])
    error_message = "canaryTrafficPercent must be absent (not 0, not null) when no canary is requested."
  }

  assert {
    condition     = output.values.mlflow.backendStore.type == "sqlite" && output.values.feast.registry.type == "file"
    error_message = "Without PostgreSQL secrets MLflow stays on SQLite and Feast on the file registry."
  }

  assert {
    condition     = output.values.auth.istio.enabled == false
    error_message = "JWT auth must be off unless jwt settings are given."
  }
}

run "canary_on_one_model_only" {
  command = plan

  variables {
    models = {
      category = { version = "2", canary_traffic_percent = 10 }
      amount   = { version = "1" }
      anomaly  = { version = "1", canary_traffic_percent = 0 }
      cashflow = { version = "1" }
    }
  }

  assert {
    condition     = output.values.models.category.canaryTrafficPercent == 10 && output.values.models.category.version == "2"
    error_message = "The category canary must carry its share and its new version."
  }

  assert {
    condition     = output.values.models.anomaly.canaryTrafficPercent == 0
    error_message = "A 0% canary (full rollback to the previous revision) must be kept, not dropped as falsy."
  }

  assert {
    condition     = output.canaries == { category = 10, anomaly = 0 }
    error_message = "Only the models with a canary appear in output.canaries."
  }
}

run "postgres_irsa_and_jwt_for_production" {
  command = plan

  variables {
    postgres_secrets = { mlflow = "titans-mlflow-db", feast_registry = "titans-feast-registry" }
    service_account_role_arns = {
      inference = "arn:aws:iam::123456789012:role/titans-inference"
      pipeline  = "arn:aws:iam::123456789012:role/titans-pipeline"
    }
    jwt                       = { issuer = "https://auth.example.com/", jwks_uri = "https://auth.example.com/jwks.json" }
    inference_from_namespaces = ["knative-serving", "istio-system"]
  }

  assert {
    condition     = output.values.mlflow.backendStore == { type = "postgresql", existingSecret = "titans-mlflow-db", secretKey = "uri" }
    error_message = "MLflow must read its PostgreSQL URL from the named Secret."
  }

  assert {
    condition     = output.values.feast.registry.type == "sql" && output.values.feast.registry.existingSecret == "titans-feast-registry"
    error_message = "Feast must use the SQL registry from the named Secret."
  }

  assert {
    condition     = output.values.serving.serviceAccount.annotations["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/titans-inference"
    error_message = "The inference ServiceAccount must carry its IRSA role."
  }

  assert {
    condition     = output.pipeline_runner_annotations == { "eks.amazonaws.com/role-arn" = "arn:aws:iam::123456789012:role/titans-pipeline" }
    error_message = "The AWS module's pipeline role is accepted and handed back for KFP's pipeline-runner account."
  }

  assert {
    condition     = output.values.feast.serviceAccount.annotations == {}
    error_message = "Workloads without a role ARN get no IRSA annotation."
  }

  assert {
    condition     = output.values.auth.istio.enabled && output.values.auth.istio.jwt.jwksUri == "https://auth.example.com/jwks.json"
    error_message = "JWT settings must switch Istio auth on with the given JWKS URI."
  }
}

run "canary_above_100_is_rejected" {
  command = plan

  variables {
    models = { category = { version = "2", canary_traffic_percent = 150 } }
  }

  expect_failures = [var.models]
}

run "fractional_canary_is_rejected" {
  command = plan

  variables {
    models = { category = { version = "2", canary_traffic_percent = 12.5 } }
  }

  expect_failures = [var.models]
}

run "unknown_model_is_rejected" {
  command = plan

  variables {
    models = { fraud = { version = "1" } }
  }

  expect_failures = [var.models]
}

run "latest_tag_is_rejected" {
  command = plan

  variables {
    image_tag = "latest"
  }

  expect_failures = [var.image_tag]
}

run "jwks_must_be_https" {
  command = plan

  variables {
    jwt = { issuer = "https://auth.example.com/", jwks_uri = "http://auth.example.com/jwks.json" }
  }

  expect_failures = [var.jwt]
}
