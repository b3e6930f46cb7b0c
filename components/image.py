"""The image every component runs in on a cluster.

Why one constant: the compiled IR committed in ``pipelines/compiled/`` must be reproducible,
so the image is fixed at compile time; bump it together with ``Dockerfile`` releases.
"""

IMAGE = "ghcr.io/titans-finance/titans:0.1.0"
