"""Canary analysis: compare a canary revision with the stable one on Prometheus evidence.

Modules: ``evidence`` (what was observed), ``prometheus`` (how it is read), ``psi``
(prediction shift statistics), ``policy`` (the pure decision), ``analyze`` (evidence ->
decision -> InferenceService patch -> MLflow aliases -> record). Nothing heavy is imported
here so ``titans --help`` stays fast.
"""
