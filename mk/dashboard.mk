# The dashboard for the people who read the results (titans dashboard, dashboard/, docs/dashboard.md).
#
#   make dashboard                 the dashboard on 127.0.0.1:8501 over $(TITANS_HOME)/models, the real export shown
#   make screenshots               the browser tests, writing each page's screenshot into docs/screenshots/
#   make bench-dashboard           each page's time to ready in Chromium on 50,000 transactions -> bench/results/dashboard.*

DASHBOARD_INPUT ?= ../shared/data/titans_transactions.csv
DASHBOARD_PORT ?= 8501
BENCH_DASHBOARD_ROWS ?= 50000

.PHONY: dashboard screenshots bench-dashboard
dashboard: install ## the dashboard on 127.0.0.1 (DASHBOARD_PORT), scoring DASHBOARD_INPUT at start when it exists
	$(VENV)/bin/titans dashboard --port $(DASHBOARD_PORT) --models $(TITANS_HOME)/models \
		$(if $(wildcard $(DASHBOARD_INPUT)),--input $(DASHBOARD_INPUT))

screenshots: install ## re-make docs/screenshots/*.png from the browser tests
	TITANS_UPDATE_SCREENSHOTS=1 $(VENV)/bin/pytest -q tests/dashboard/test_dashboard_browser.py -k every_page_renders

bench-dashboard: install ## each page's time to ready in Chromium, 50k transactions (bench/results/dashboard.*)
	$(PY) bench/bench_dashboard.py --rows $(BENCH_DASHBOARD_ROWS)
