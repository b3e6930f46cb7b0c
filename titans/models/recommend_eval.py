"""The recommender's evaluation: recall@10 and NDCG@10 on a time split, beside two baselines.

Why these baselines: "the merchants everybody uses" (global popularity) and "the merchants this
account uses most" (its own purchase counts, topped up with popular ones) are what a
product would ship without a model; the second is strong, because businesses keep buying from
their suppliers. A recommender is only worth serving if it beats the better of the two on both
metrics (``titans.models.evaluation.GATED_METRICS``).

Protocol: the model is fitted on the Feast snapshots at the holdout cut (features from days
strictly before it), and each account's relevant set is the merchants it buys from after the
cut. Accounts with no purchase after the cut are left out; accounts unknown at the cut are
scored too (every method falls back to popularity for them). The blend weights are chosen on
an inner split of the training window, never on the holdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans.models.recommend import COUNT, Ranker, RecommendModel

K = 10


def ranking_scores(ranked: np.ndarray, relevant: list[set[str]], k: int = K) -> dict[str, float]:
    """Mean recall@k (hits over min(|relevant|, k)) and NDCG@k (binary gains) over accounts."""
    recall, ndcg = [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for row, rel in zip(ranked, relevant, strict=True):
        hits = np.array([m in rel for m in row[:k]], dtype=float)
        ideal = discounts[: min(len(rel), k)].sum()
        recall.append(hits.sum() / min(len(rel), k))
        ndcg.append(float(hits @ discounts[: len(hits)]) / ideal)
    return {f"recall_at_{k}": float(np.mean(recall)), f"ndcg_at_{k}": float(np.mean(ndcg))}


def _relevant(frame: pd.DataFrame) -> tuple[list[str], list[set[str]], list[set[str]]]:
    """Accounts with purchases in the target window, their merchants there, and those new to them."""
    bought = frame[frame["target_txns"] > 0]
    accounts = sorted(bought["account_id"].astype(str).unique())
    groups = bought.groupby("account_id")
    relevant = [set(groups.get_group(a)["merchant"].astype(str)) for a in accounts]
    old = frame[frame[COUNT] > 0].groupby("account_id")["merchant"].agg(set)
    new = [rel - old.get(a, set()) for a, rel in zip(accounts, relevant, strict=True)]
    return accounts, relevant, new


def _top(score: np.ndarray, merchants: list[str], k: int = K) -> np.ndarray:
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    return np.array(merchants, dtype=object)[order]


def baseline_rankings(model: RecommendModel, frame: pd.DataFrame, accounts: list[str]) -> dict[str, np.ndarray]:
    """Top-K lists of the two baselines over the model's merchants, from the same snapshots."""
    seen = frame[frame[COUNT] > 0]
    index = pd.Index(model.merchants)
    counts = seen.groupby("merchant")[COUNT].sum().reindex(model.merchants, fill_value=0).to_numpy(float)
    popular = counts / counts.max()
    own = np.zeros((len(accounts), len(model.merchants)))
    rows = pd.Index(accounts).get_indexer(seen["account_id"].astype(str))
    keep = rows >= 0
    own[rows[keep], index.get_indexer(seen["merchant"].astype(str))[keep]] = seen[COUNT].to_numpy(float)[keep]
    # Own counts first; popularity (< 1 purchase) only orders the merchants the account never used.
    return {"global_popularity": _top(np.tile(popular, (len(accounts), 1)), model.merchants),
            "own_most_frequent": _top(own + 0.5 * popular, model.merchants)}


def _score(model: RecommendModel, frame: pd.DataFrame
           ) -> tuple[list[str], list[set[str]], list[set[str]], np.ndarray]:
    accounts, relevant, new = _relevant(frame)
    ranked = _top(model.scores(accounts), model.merchants)
    return accounts, relevant, new, ranked


def window_examples(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Pair features at one window's reference day, and whether the pair was bought in the window.

    Every account of the frame (known or not at the reference day) against every merchant known
    then: the negatives are the merchants it did not buy from.
    """
    model = RecommendModel().fit(frame)
    accounts = sorted(frame["account_id"].astype(str).unique())
    x = model.pair_features(accounts)
    y = np.zeros(x.shape[:2])
    bought = frame[frame["target_txns"] > 0]
    rows = pd.Index(accounts).get_indexer(bought["account_id"].astype(str))
    cols = pd.Index(model.merchants).get_indexer(bought["merchant"].astype(str))
    keep = (rows >= 0) & (cols >= 0)
    y[rows[keep], cols[keep]] = 1.0
    return x.reshape(-1, x.shape[2]), y.ravel()


def fit_ranker(frames: list[pd.DataFrame], seed: int = 0) -> Ranker:
    """The ranker learned on the examples of every window in ``frames`` (one reference day each)."""
    examples = [window_examples(f) for f in frames]
    return Ranker.fit(np.concatenate([x for x, _ in examples]), np.concatenate([y for _, y in examples]), seed)


def evaluate(model: RecommendModel, frame: pd.DataFrame) -> dict[str, Any]:
    """Metrics of the model and both baselines on the holdout rows (``role == "fit"``)."""
    accounts, relevant, new, ranked = _score(model, frame)
    cold = sum(a not in set(model.accounts) for a in accounts)
    has_new = [i for i, n in enumerate(new) if n]

    def scores(lists: np.ndarray) -> dict[str, float]:
        out = ranking_scores(lists, relevant)
        if has_new:
            out[f"new_merchant_recall_at_{K}"] = ranking_scores(lists[has_new], [new[i] for i in has_new])[
                f"recall_at_{K}"]
        return out

    baselines = baseline_rankings(model, frame, accounts)
    return {
        "metrics": scores(ranked) | {"accounts_evaluated": len(accounts), "cold_start_accounts": int(cold),
                                     "merchants": len(model.merchants),
                                     "relevant_per_account": float(np.mean([len(r) for r in relevant]))},
        "baselines": {name: scores(lists) for name, lists in baselines.items()},
        "_rankings": {"model": ranked, **baselines, "relevant": relevant},
    }


def recall_curve_plot(rankings: dict[str, Any], path: Path) -> Path:
    """Recall@k for k = 1..10 of the model and both baselines on the holdout."""
    from titans.models import plots  # matplotlib: not in the serving image, which imports this module

    plt = plots.plt
    fig, ax = plt.subplots(figsize=(6, 4))
    relevant = rankings["relevant"]
    ks = np.arange(1, K + 1)
    for name in ("model", "own_most_frequent", "global_popularity"):
        curve = [ranking_scores(rankings[name], relevant, int(k))[f"recall_at_{k}"] for k in ks]
        ax.plot(ks, curve, marker="o", label=name.replace("_", " "))
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.set_title("Recommend: recall@k on the holdout")
    ax.legend(fontsize=8)
    return plots._save(fig, path)


def train_recommend(ts: pd.DataFrame, cfg: Any, plot_dir: Path) -> tuple[Any, dict, pd.DataFrame, dict]:
    """``titans.train``'s recommend task: rank on the inner window, score the holdout, refit at the end.

    The holdout model's ranker learns from the windows before the cut (features at each window's
    start, purchases inside it); the served model's from those and the holdout window, applied to
    the state the day after the data.
    """
    seed = int(getattr(cfg, "seed", 0))
    roles = {role: part.reset_index(drop=True) for role, part in ts.groupby("role")}
    tune = [part.reset_index(drop=True) for _, part in roles["tune"].groupby("date")]
    model = RecommendModel(ranker=fit_ranker(tune, seed)).fit(roles["fit"])
    result = evaluate(model, roles["fit"])
    rankings = result.pop("_rankings")
    figs = {"recall at k": recall_curve_plot(rankings, plot_dir / "recommend_recall.png")}
    final = RecommendModel(ranker=fit_ranker([*tune, roles["fit"]], seed)).fit(roles["final"])
    result["metrics"]["ranker_windows"] = len(tune)
    result["model"] = final.describe()
    result["holdout_ranker_coefficients"] = model.ranker.describe() if model.ranker else None
    example = pd.DataFrame({"account_id": final.accounts[:2], "k": np.array([K, K], dtype="int32")})
    return final, result, example, figs
