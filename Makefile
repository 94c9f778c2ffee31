# The two set-up commands of the README, and a few more for developers.
#   make demo   runs the example shop on the bundled Amazon sandbox
#   make test   runs the test suite (SQLite; PostgreSQL when
#               AMAZON_ORDERS_TEST_DATABASE_URL is set)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint docs bench bench-scale translations clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	$(BIN)/python -m pip install -q -e . --group tests --group lint --group docs
	touch $@

demo: $(BIN)/.installed
	$(BIN)/python -m example_app

test: $(BIN)/.installed
	$(BIN)/python -m pytest

lint: $(BIN)/.installed docs
	$(BIN)/ruff check flask_amazon_orders example_app tests bench
	$(BIN)/ruff format --check flask_amazon_orders example_app tests bench
	$(BIN)/mypy

docs: $(BIN)/.installed
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(BIN)/.installed
	$(BIN)/python bench/bench_sync.py
	$(BIN)/python bench/bench_admin.py
	$(BIN)/python bench/bench_cancel.py

# Many stores on 1, 2 and 4 Celery workers (needs Redis; pass DB=postgresql+psycopg://…).
bench-scale: $(BIN)/.installed
	$(BIN)/python bench/bench_scale.py $(if $(DB),--db $(DB))

# Extract the admin pages' text, merge it into every catalog, compile the catalogs.
CATALOGS := flask_amazon_orders/translations
translations: $(BIN)/.installed
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k Nn_:1,2 --no-location --sort-output \
	  --project Flask-Amazon-Orders -o $(CATALOGS)/flask_amazon_orders.pot .
	$(BIN)/pybabel update -D flask_amazon_orders -i $(CATALOGS)/flask_amazon_orders.pot \
	  -d $(CATALOGS) --no-wrap
	$(BIN)/pybabel compile -D flask_amazon_orders -d $(CATALOGS) --statistics

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
