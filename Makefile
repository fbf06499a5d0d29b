# zoo: two commands do all set-up on a fresh machine with python3 (3.10+) and make.
#   make reports   the main job: run the notebooks with default parameters into reports/
#   make test      the test suite (what CI runs)
#   make test-fast the tests not marked slow: a quick loop while developing
# Both create .venv on first use and install zoolib editable with the pinned versions in
# constraints.txt; later runs reuse it (reinstalling only when pyproject.toml or
# constraints.txt change).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PARAMS ?= default
PRECISION ?=  # float32, mixed_bfloat16 or auto for notebooks 02-04 (empty: their parameter)

.PHONY: test test-fast test-browser reports pretrain pretrain-real lab kernel lint lock benchmarks clean-reports

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# --durations: the slowest tests, printed at the end (the budget is 8 minutes). -n auto: one
# pytest-xdist worker per core (at most 4: each loads TensorFlow and may start notebook
# kernels), a test module's tests kept together (its fixtures run once). Plain `pytest` runs
# serially.
XDIST := -n auto --maxprocesses 4 --dist loadscope
test: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest $(XDIST) -m "not slow"

# JupyterLab, the widget and the reports in a real Chromium (Debian's chromium and
# chromium-driver; .ci/run installs them). Screenshots: browser_tests/artifacts/.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -s browser_tests

reports: $(STAMP)
	$(BIN)/python -m zoolib run --params $(PARAMS) $(if $(strip $(PRECISION)),--precision $(PRECISION),)

# Regenerate the pretrained CNN shipped in zoolib/cnn/shipped/simulated/ (about an hour on 2 CPU cores);
# commit the two files it writes.
pretrain: $(STAMP)
	$(BIN)/python -m zoolib pretrain

# Regenerate the real-image CNN in zoolib/cnn/shipped/real/ from the simulated one: SimCLR and
# multi-task labels on the shared real images (../shared/data; 30-40 minutes on 2 CPU cores),
# measured by experiments/yardstick.py (docs/representations.md); commit the three files it writes.
pretrain-real: $(STAMP)
	$(BIN)/python experiments/real_trunk.py

# JupyterLab refuses to run as root unless told to (containers often run as root)
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root,)

# Register the environment as a "Python (zoo)" kernel for a Jupyter installed elsewhere.
kernel: $(STAMP)
	$(BIN)/python -m ipykernel install --user --name zoo --display-name "Python (zoo)"

lint: $(STAMP)
	$(BIN)/ruff check zoolib tests benchmarks experiments notebooks browser_tests
	$(BIN)/nbstripout --verify notebooks/*.ipynb

benchmarks: $(STAMP)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lock: $(STAMP)
	{ echo "# Pinned versions used by 'make' (pip install -c constraints.txt -e .[dev])."; \
	  echo "# Regenerate after changing dependencies: make lock"; \
	  $(BIN)/pip freeze --exclude-editable | grep -v "^zoolib"; } > constraints.txt

clean-reports:
	rm -rf reports/executed reports/html reports/metrics reports/index.html
