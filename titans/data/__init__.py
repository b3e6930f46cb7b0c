"""The data plane: the transaction schema, the generator, and ingest (exports in, a clean table out)."""
