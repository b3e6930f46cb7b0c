"""Model health in production: drift references, live performance, and the retraining trigger."""
