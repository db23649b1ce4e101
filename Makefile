# Two commands a newcomer needs: `make run` and `make test`. Both create/reuse .venv/ in the repo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench sync clean quality

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/syndicator --config config.yaml run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy syndicator
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m bench

quality: $(STAMP)
	$(BIN)/python -m bench.corpus_quality $(or $(CORPUS),../shared/corpus/posts)

clean:
	rm -rf feeds/*.atom feeds/*.rss feeds/tags feeds/articles feeds/index.html feeds/feeds.opml var/
