# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench samples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the ray extra too: tests/test_sweep_ray.py runs `tfopt sweep --executor ray` on a local Ray instance
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

demo: $(STAMP)
	@mkdir -p out
	$(BIN)/tfopt convert sample_models/mnist_cnn.h5 --quantize int8 \
	    --data sample_models/mnist.npz -o out/mnist_cnn.int8.tflite --report out/report.json

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/run.py

samples: $(STAMP)
	$(BIN)/pip install --quiet -e '.[samples]'
	$(BIN)/python sample_models/make_samples.py

clean:
	rm -rf $(VENV) out build *.egg-info
