"""The feature store: point-in-time feature tables, the Feast repository's API, request-time math.

- ``spec``: the catalogue (views, columns, dtypes, defaults, services) everything agrees on.
- ``transaction``: request-time features, one implementation for training and serving.
- ``history``: offline snapshot tables from the clean table (strictly-before-the-day rule).
- ``build``: ``titans features build`` (tables -> apply -> materialize).
- ``store``: ``FeatureClient`` (training sets and online features).

Heavy libraries (feast, pyarrow) are imported by ``build`` and ``store`` only; Feast's typeguard decorators are
made no-ops here, before any of them imports Feast (``feast_import``: ~6 s of every cold process).
"""

from titans.features.feast_import import skip_feast_typechecks

skip_feast_typechecks()
