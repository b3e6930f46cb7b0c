"""The training report carries its plots into the Kubeflow UI: HTML and Markdown with the PNGs inside them.

Why these tests: the UI shows an artifact as one file (HTML in a sandboxed iframe's ``srcdoc``, Markdown
through markdown-to-jsx), so a plot linked by a path beside the report was a broken image. The pages are
opened in headless Chromium from a folder holding no PNG, where a relative link could not load.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model
from sklearn.metrics import roc_auc_score
from trained_home import SEED

from components.train import train_model
from titans.models import plots, report
from titans.models.evaluation import roc_points
from titans.models.report_html import data_uri, html_page, kfp_markdown
from titans.models.training_sample import write_no_sample

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install --no-install-recommends chromium)")

# Appended to a copy of the page: once it has loaded, writes into the DOM whether every image decoded.
_PROBE = """<script>
addEventListener("load", () => {
  const images = [...document.images];
  const out = document.createElement("pre");
  out.id = "image-check";
  out.textContent = JSON.stringify({
    count: images.length,
    loaded: images.every(i => i.complete && i.naturalWidth > 0),
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
  });
  document.body.append(out);
});
</script>"""


def _images_in_chromium(page: str, folder: Path) -> dict:
    """Open ``page`` from ``folder`` in headless Chromium; the probe's verdict on its images."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "page.html"
    target.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={folder / 'profile'}",
         "--virtual-time-budget=5000", "--dump-dom", target.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom, re.S)
    assert found, f"the probe did not run; dumped DOM starts: {dom[:500]!r}"
    return json.loads(html.unescape(found.group(1)))


def _report_with_plots(folder: Path, category: str) -> tuple[Path, dict[str, Path]]:
    """A report written by ``report.py`` with two real plots and ``category`` in its per-class table."""
    rng = np.random.default_rng(SEED)
    y = (rng.random(400) < 0.1).astype(int)
    figs = {
        "precision-recall": plots.precision_recall(y, {"model": y + rng.random(400)}, folder / "pr.png"),
        "confusion matrix": plots.confusion(np.array(["a", category, "a"]), np.array(["a", category, category]),
                                            folder / "confusion.png"),
    }
    result = {
        "metrics": {"accuracy": 0.9, "macro_f1": 0.8},
        "baselines": {"majority_class": {"accuracy": 0.5, "macro_f1": 0.2}},
        "notes": ["Rows & columns: 1 < 2 > 0"],
        "per_class": {category: {"precision": 1.0, "recall": 0.5, "f1": 0.67, "support": 2}},
    }
    section = report.section("category", result, {k: v.name for k, v in figs.items()},
                             [("accuracy", True), ("macro_f1", True)])
    return report.write(folder / "report.md", "titans-category: holdout evaluation", {"rows": 3}, [section]), figs


def test_html_embeds_every_plot_and_escapes_text(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>'
    path, figs = _report_with_plots(tmp_path, hostile)
    page = html_page(path)

    for png in figs.values():
        assert data_uri(png) in page
    sources = re.findall(r'\bsrc="([^"]*)"', page)
    assert len(sources) == len(figs) and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "href=" not in page and "<script" not in page and "<link" not in page
    assert html.escape(hostile) in page
    assert "Rows &amp; columns: 1 &lt; 2 &gt; 0" in page
    assert "<th>metric</th><th>model</th><th>majority_class</th>" in page
    assert "<td>accuracy</td><td>0.9</td><td>0.5</td>" in page
    assert "<strong>accuracy 0.9</strong> beats the best baseline" in page
    assert "<details><summary>per class</summary>" in page and page.count("</details>") == 1
    assert "<title>titans-category: holdout evaluation</title>" in page


def test_kfp_markdown_embeds_plots_and_names_those_past_the_viewer_limit(tmp_path: Path) -> None:
    path, figs = _report_with_plots(tmp_path, "rent")
    text = kfp_markdown(path)
    for label, png in figs.items():
        assert f"![{label}]({data_uri(png)})" in text
    assert "<details>" not in text and "</details>" not in text and "**per class**" in text
    assert "| rent | 1.00 | 0.50 | 0.67 | 2 |" in text

    # The viewer cuts past its limit: a plot that does not fit is named, pointing at the HTML artifact.
    small = len(path.read_text()) + len(data_uri(figs["precision-recall"])) + 1000
    assert len(data_uri(figs["confusion matrix"])) > 1000
    cut = kfp_markdown(path, limit=small)
    assert len(cut) <= small
    assert data_uri(figs["precision-recall"]) in cut and data_uri(figs["confusion matrix"]) not in cut
    assert "*confusion matrix: too large for this viewer; see the report_html artifact" in cut


def test_roc_points_are_few_finite_and_on_the_curve() -> None:
    rng = np.random.default_rng(SEED)
    y = (rng.random(20_000) < 0.05).astype(int)
    score = y * 0.8 + rng.random(len(y))
    roc = roc_points(y, score)
    fpr, tpr, thresholds = (np.array(roc[k]) for k in ("fpr", "tpr", "thresholds"))
    assert 100 < len(fpr) <= 200 and len(fpr) == len(tpr) == len(thresholds)
    assert np.isfinite(thresholds).all() and thresholds[0] > score.max()
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(fpr) >= 0).all() and (np.diff(tpr) >= 0).all() and (np.diff(thresholds) <= 0).all()
    assert abs(np.trapezoid(tpr, fpr) - roc_auc_score(y, score)) < 0.01
    assert roc_points(np.zeros(10, int), rng.random(10)) is None


@needs_chromium
def test_trained_reports_open_in_chromium_with_every_plot_loaded(trained, tmp_path: Path) -> None:
    _, summary = trained
    # The check itself sees a broken image: the raw Markdown's relative link, opened where no PNG lies.
    broken = _images_in_chromium('<html><body><img alt="pr" src="anomaly_pr.png"></body></html>', tmp_path / "raw")
    assert broken == {"count": 1, "loaded": False, "broken": ["pr"]}

    for task, s in summary["tasks"].items():
        assert s["plots"], task
        seen = _images_in_chromium(html_page(Path(s["report"])), tmp_path / task)
        assert seen == {"count": len(s["plots"]), "loaded": True, "broken": []}, task


def test_training_step_logs_roc_curve_and_writes_reports_with_plots_inside(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pipeline's training function itself (what KFP ships) on the trained home's data and store."""
    home, summary = trained
    data_hash = summary["data_hash"]
    # The step sets these for its pod; here monkeypatch restores them after the test.
    monkeypatch.setenv("TITANS_HOME", str(home / "home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    lineage = tmp_path / "feature_summary.json"
    lineage.write_text(json.dumps({"data_hash": data_hash}))
    classification = ClassificationMetrics(uri=str(tmp_path / "classification"))
    md, page = Markdown(uri=str(tmp_path / "out" / "report")), HTML(uri=str(tmp_path / "out" / "report_html"))
    (tmp_path / "out").mkdir()
    write_no_sample(tmp_path / "sample", "pandas")  # what the sample step hands a pandas run's trainings

    out = json.loads(train_model.python_func(
        task="anomaly", clean_data=Dataset(uri=str(home / "data")), feature_summary=Artifact(uri=str(lineage)),
        training_sample=Dataset(uri=str(tmp_path / "sample")), titans_home=str(home / "home"),
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", gate_config="",
        n_estimators=40, cv_folds=2, model=Model(uri=str(tmp_path / "model")),
        metrics=Metrics(uri=str(tmp_path / "metrics")), classification=classification, report=md,
        report_html=page))
    assert out["task"] == "anomaly" and out["metrics"]["roc_auc"] > 0.5

    points = classification.metadata["confidenceMetrics"]
    assert 2 <= len(points) <= 200
    assert all(np.isfinite([p["confidenceThreshold"], p["recall"], p["falsePositiveRate"]]).all() for p in points)
    assert (points[0]["falsePositiveRate"], points[-1]["recall"]) == (0.0, 1.0)
    assert len(summary["tasks"]["anomaly"]["roc_curve"]["fpr"]) <= 200  # carried by `titans train` too

    plot = tmp_path / "model" / "_reports" / "anomaly" / "anomaly_pr.png"
    assert data_uri(plot) in Path(page.path).read_text()
    assert f"![precision-recall]({data_uri(plot)})" in Path(md.path).read_text()
    assert "anomaly_pr.png" not in Path(page.path).read_text() + Path(md.path).read_text()
    if CHROMIUM:
        # The precision-recall curve and the reliability diagram (generated data carries fraud labels).
        seen = _images_in_chromium(Path(page.path).read_text(), tmp_path / "chromium")
        assert seen == {"count": 2, "loaded": True, "broken": []}
