# Two entry points: `make demo` (install, then run the pipeline on bundled data)
# and `make test` (install, then lint and run the test suite). Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench data temperature clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# pytest exits 5 when it collects no test: treat that as a failure, not a pass.
test: lint
	$(PY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$status

demo: install
	bash scripts/demo.sh

# Regenerate the bundled propensity sets from scratch with LAMMPS, one per temperature (T = 0.64
# took 21 min, 0.80 4 min and 0.56 28 min on 2 shared cores; the exact commands and
# their figures are in datasets/ka_T*/README.md and manifest.json).
PROPENSITY_TEMPERATURES := 0.56 0.64 0.80
data: install
	for T in $(PROPENSITY_TEMPERATURES); do \
		$(PY) simulate.py --n_atoms 1000 --temperature $$T --n_configs 16 --n_iso 16 \
			--is_values 0.9 0.8 0.7 0.6 0.5 0.4 0.36787944117144233 --threads 1 \
			--store first --float32 --output_dir datasets/ka_T$$T --overwrite || exit 1; \
	done

# The temperature-from-structure study (README "temperature"): graphs, MLP floor and
# CGCNN x 3 seeds on datasets/ka_temperature; about 15 min of CPU.
temperature: install
	bash scripts/temperature_study.sh study

clean:
	rm -rf $(VENV) outputs

# Benchmarks print figures (none is a timed test); each takes minutes, see the README.
bench: install
	$(PY) bench/bench_graph.py
	$(PY) bench/bench_models.py
	$(PY) bench/bench_deepmind.py
	$(PY) bench/bench_explain.py
	$(PY) bench/bench_speed.py
