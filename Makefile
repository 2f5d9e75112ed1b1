# bigmodel: `make demo` trains the seed CNN recipe; `make test` runs the test suite.
# Both create .venv and install pinned dependencies (constraints.txt pins torch==2.13.0).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
FASHION_DIR := /usr/share/datasets/fashion-mnist

.PHONY: demo test lint data venv clean keras-api-page

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian data packages, installed only when missing and apt is usable (root): Fashion-MNIST (IDX
# files), fortunes (labelled text), espeak-ng (renders the spoken-digits corpus) and graphviz
# (keras.utils.plot_model's images). Without them the loaders say where they looked.
DEBIAN_DATA := dataset-fashion-mnist:$(FASHION_DIR)/train-images-idx3-ubyte.gz fortunes:/usr/share/games/fortunes/fortunes \
	espeak-ng:/usr/bin/espeak-ng graphviz:/usr/bin/dot

data:
	@missing=""; for entry in $(DEBIAN_DATA); do pkg=$${entry%%:*}; file=$${entry#*:}; \
		[ -e "$$file" ] || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian data packages:$$missing"; \
		(apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || \
		echo "warning: could not install$$missing; set BIGMODEL_DATA or allow downloads"; \
	fi

demo: venv data
	$(VENV)/bin/bigmodel train configs/fashion_cnn.yaml --set train.epochs=5

# Two pytest workers (pytest-xdist): the tests run one torch thread each, so on 2 cores the suite
# takes about half the time of one process.
test: venv data
	$(PY) -m pytest -n 2

# docs/keras_api.md: every Keras 3 name with its state here, from docs/keras_api.json (real Keras's
# names), docs/keras_api_notes.yaml and the code; tests/test_keras_api_page.py fails until it is rerun.
keras-api-page: venv
	$(PY) tools/keras_api_index.py

lint: venv
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
