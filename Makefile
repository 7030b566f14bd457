# `make demo` and `make test` each install what they need first (a fresh machine needs nothing else).
PYTHON ?= python3
STAMP := .install.stamp

.PHONY: install test demo bench lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(PYTHON) -m ruff check src tests benchmarks
	$(PYTHON) -m ruff format --check src tests benchmarks

test: lint
	$(PYTHON) -m pytest

demo: install
	$(PYTHON) -m semtok demo --out runs/demo

# The paper's comparison (issue 6) first; then speed benchmarks. Stages already done are reused.
# (benchmarks/bench_reconstruction.py, the earlier 600-step reconstruction table, still runs on its own.)
bench: install
	$(PYTHON) -m semtok bench --suite mnist --out runs/bench/suite-mnist --kept benchmarks/suite-mnist
	$(PYTHON) benchmarks/bench_sampling.py
	$(PYTHON) benchmarks/bench_masked_sampling.py
	$(PYTHON) benchmarks/bench_text_sampling.py
	$(PYTHON) benchmarks/bench_quantizer.py
	$(PYTHON) benchmarks/bench_vqkd.py
	$(PYTHON) benchmarks/bench_kmeans.py
	$(PYTHON) benchmarks/bench_data.py
	$(PYTHON) benchmarks/bench_fid_agreement.py
	$(PYTHON) benchmarks/bench_folder_scan.py
	$(PYTHON) benchmarks/bench_throughput.py
	$(PYTHON) benchmarks/bench_distributed.py
	$(PYTHON) benchmarks/bench_train_steps.py --before d976049
	$(PYTHON) benchmarks/bench_probe_gap.py --out runs/bench/probe-gap

format: install
	$(PYTHON) -m ruff format src tests benchmarks
	$(PYTHON) -m ruff check --fix src tests benchmarks

clean:
	rm -rf runs $(STAMP) .pytest_cache .ruff_cache
