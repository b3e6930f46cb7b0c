"""Model health in production: drift references, live performance, and the retraining trigger's rule.

The trigger's server submits pipeline runs, so it lives in ``pipelines/retrain_trigger.py``.
"""
