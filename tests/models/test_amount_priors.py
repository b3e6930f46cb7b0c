"""The amount prior's neighbours ranked on blocks of texts give the row-by-row definition's values, to the last bit."""

from __future__ import annotations

import numpy as np
import pandas as pd


def test_block_neighbour_priors_equal_the_row_by_row_definition(trained) -> None:
    from titans import model_dir
    from titans.data.ingest import read_clean
    from titans.models.amount import neighbour_prior, neighbour_priors, text_of

    tmp, summary = trained
    prior = model_dir.load(summary["tasks"]["amount"]["model_dir"]).model.prior
    clean = read_clean(tmp / "data")
    clean = clean[clean["type"] == "Expense"]
    keys = pd.DataFrame({"text": text_of(clean).to_numpy(), "category": clean["category"].to_numpy()})
    keys = keys.drop_duplicates()
    partial = 0
    for category, group in keys.groupby("category"):
        pairs = prior.category_pairs().get(category)
        if pairs is None:
            continue
        texts = np.concatenate([group["text"].to_numpy(dtype=object), ["zzzz qqqq", "", "office"]])  # unlike any pair
        sims = (prior.vectorizer.transform(texts) @ pairs.matrix_t).toarray() / 2.0
        found, trust = neighbour_priors(sims, pairs.counts, pairs.log_spend, pairs.support, prior.neighbours, 3.5)
        reference = [neighbour_prior(row, pairs.counts, pairs.log_spend, pairs.support, prior.neighbours, 3.5)
                     for row in sims]
        np.testing.assert_array_equal(found, [r[0] for r in reference])
        np.testing.assert_array_equal(trust, [r[1] for r in reference])
        partial += max(prior.neighbours, int(np.sqrt(pairs.support))) < sims.shape[1]
    assert partial > 0  # some category ranks only its leading pairs (the partition path), not every pair
