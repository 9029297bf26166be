# connect-task-bridge — everything runs locally, without AWS.
#   make demo    events/ through the function (under a local Lambda Runtime API) against the
#                local Connect stand-in; prints ContactIds and the tasks created
#   make test    unit and integration tests (what CI runs)
#   make render EVENT=events/eventbridge-order-failed.json [MAPPING=examples/mapping.yaml]
#   make schema        regenerate schema/mapping.schema.json (the mapping's JSON Schema)
#   make check [MAPPING=examples/mapping.yaml]   the configuration and mapping as a cold start reads them
#   make lint    rustfmt and clippy, as CI checks them
#   make test-faults   the fault matrix with its table
#   make test-surge    bursts through the real binary at Connect's quota, with its table
#   make sam-check     cfn-lint, sam validate, sam build, glibc check (the deploy path, offline)
#   make dashboard-picture   docs/dashboard.png: the template's dashboard fed by a short surge run
#   make package       what `sam publish` takes: release build, sam validate, sam package (moto's S3 offline)
#   make bench         benchmarks beside a Python + boto3 peer, printed as one table
#   make fuzz          coverage-guided fuzzing (cargo fuzz, nightly), FUZZ_SECONDS per target
#   make mutants       mutation testing of the core modules (cargo mutants, unit tests), never in CI
#   make model         the task table's protocol, model-checked over a larger configuration

CARGO ?= cargo
# One target directory for every step (the function, the stand-in, the tests): aws-sdk-connect
# is large and must not be built twice.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
BIN := $(CARGO_TARGET_DIR)/debug
MAPPING ?= examples/mapping.yaml
EVENT ?= events/eventbridge-order-failed.json
# Dummy identifiers for render; a real deployment sets them in template.yaml.
DEMO_INSTANCE := 11111111-2222-3333-4444-555555555555
DEMO_FLOW := aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee

# Mapping files shipped inside the Lambda package (TASK_MAPPING_FILE names one of them).
PACKAGE_FILES ?= examples/mapping.yaml

# Python tools live in a venv of the project's: moto's server (Secrets Manager for the webhook
# tests), and for the deploy checks cfn-lint and the SAM CLI.
VENV := $(CURDIR)/.venv
PIP := $(VENV)/bin/pip

.PHONY: package dashboard-picture mutants model schema check fuzz bench test-surge test-faults demo test lint render build standin clean release build-BridgeFunction sam-check

# Every binary of the workspace (the function, the stand-in, local-run) plus the test targets in
# one build: with the test targets in, cargo unifies crate features exactly as `cargo test` does,
# whereas a plain `cargo build` would compile aws-sdk-connect a second time with other features.
# (`cargo test --no-run` alone is not enough: it builds no binary of the stand-in crate.)
build:
	$(CARGO) build --workspace --bins --tests --quiet

demo: build $(VENV)/.moto
	$(BIN)/local-run --function $(BIN)/connect-task-bridge --events events --mapping $(MAPPING) \
		--moto $(VENV)/bin/moto_server --lifecycle examples/lifecycle.yaml \
		--task-template examples/task-template.json --template-mapping examples/task-template.yaml

test: $(VENV)/.moto $(VENV)/.senders tests/senders/node_modules/.installed
	MOTO_SERVER=$(VENV)/bin/moto_server $(CARGO) test --workspace

# Benchmarks, one table: per-event CPU (criterion, in process), then cold start, an SQS batch
# with 50 ms Connect latency, warm latency and peak RSS of the release binary under the local
# runtime API beside the Python + boto3 peer under awslambdaric. Not timed tests: numbers.
bench: release $(VENV)/.peer $(VENV)/.moto
	$(CARGO) bench --bench pipeline -- --noplot
	$(CARGO) build --release -p connect-standin --bin bench
	$(CARGO_TARGET_DIR)/release/bench --function $(CARGO_TARGET_DIR)/release/connect-task-bridge \
		--python $(VENV)/bin/python --peer-dir bench/peer --criterion $(CARGO_TARGET_DIR)/criterion \
		--moto $(VENV)/bin/moto_server
	$(CARGO) build --release -p connect-standin --bin surge
	MOTO_SERVER=$(VENV)/bin/moto_server $(CARGO_TARGET_DIR)/release/surge \
		--function $(CARGO_TARGET_DIR)/release/connect-task-bridge --scale $(SURGE_SCALE) --root $(CURDIR)

$(VENV)/.peer: $(VENV)/bin/python bench/peer/requirements.txt
	$(PIP) install -q --only-binary awslambdaric -r bench/peer/requirements.txt
	touch $@

# Coverage-guided fuzzing of the payload → request path, the time parser and the signature
# check (fuzz/, libFuzzer through cargo fuzz on the nightly toolchain), each target for
# FUZZ_SECONDS, growing fuzz/corpus/ (the payload target also reads events/ as seeds; shrink the
# corpus with `cargo +nightly fuzz cmin TARGET` from fuzz/ before committing it). Not in CI: building the targets with the sanitizer takes
# longer than CI's budget allows; `make test` replays the kept corpus (tests/fuzz_corpus.rs).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := payload scheduled_time signature
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		dict=""; [ -f dict/$$t.dict ] && dict="-dict=dict/$$t.dict"; \
		seeds=""; [ $$t = payload ] && seeds="../events"; \
		CARGO_TARGET_DIR=$(CURDIR)/fuzz/target cargo +nightly fuzz run $$t corpus/$$t $$seeds -- $$dict \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

# Mutation testing of the core modules against the unit tests (.cargo/mutants.toml: `--lib`,
# the warm target dir copied into the scratch tree). A whole run is several hundred mutants at a
# few seconds each; split it across sessions with MUTANTS_ARGS="--shard 1/4" (2/4, ...), or test
# only a change with MUTANTS_ARGS="--in-diff <(git diff main)". Survivors: mutants/survivors.md.
MUTANTS_FILES ?= src/error/*.rs src/connect.rs src/table.rs src/lifecycle/*.rs src/template/*.rs src/token.rs src/pace/*.rs src/webhook_auth.rs src/queue.rs src/protocol.rs
MUTANTS_ARGS ?=
mutants:
	command -v cargo-mutants >/dev/null || $(CARGO) install cargo-mutants --locked
	$(CARGO) mutants --package connect-task-bridge $(foreach f,$(MUTANTS_FILES),--file $(f)) $(MUTANTS_ARGS)

# The task table's protocol over every interleaving of a larger configuration than `make test`
# explores (three deliveries, more crashes and clock steps): src/protocol.rs.
model:
	CTB_MODEL=large $(CARGO) test --lib protocol::model -- --nocapture

# The surge simulation over the full bursts (300 SQS messages, 300 EventBridge events, 40
# webhooks, a shared quota, Connect faults), printing its table; `make test` runs it shortened.
SURGE_SCALE ?= 5
test-surge: build $(VENV)/.moto
	MOTO_SERVER=$(VENV)/bin/moto_server $(BIN)/surge --function $(BIN)/connect-task-bridge --scale $(SURGE_SCALE) --root $(CURDIR)

# The README's picture of the template's dashboard (docs/dashboard.png): a short surge run (two
# bursts of 300 SQS messages: another caller taking half the quota, then 10 % of calls failing)
# recorded as CloudWatch would see it, rendered from the dashboard body by matplotlib. ~2 minutes.
# A scenario missing a surge target does not stop the picture (`make test-surge` judges those).
DASHBOARD_RECORD := $(CARGO_TARGET_DIR)/dashboard-surge.jsonl
dashboard-picture: build $(VENV)/.moto $(VENV)/.sam $(VENV)/.picture
	MOTO_SERVER=$(VENV)/bin/moto_server $(BIN)/surge --function $(BIN)/connect-task-bridge --scale 5 \
		--root $(CURDIR) --only 4 --only 5 --record $(DASHBOARD_RECORD) || true
	$(VENV)/bin/python scripts/dashboard_picture.py $(DASHBOARD_RECORD) docs/dashboard.png

$(VENV)/.picture: $(VENV)/bin/python
	$(PIP) install -q 'matplotlib>=3.9,<4'
	touch $@

# The fault matrix alone, printing its table (it also runs in `make test`).
test-faults:
	$(CARGO) test --test faults -- --nocapture

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.moto: $(VENV)/bin/python
	$(PIP) install -q 'moto[server]>=5,<6'
	touch $@

# The webhook senders' own signing libraries (tests/senders.rs): PyPI into .venv, npm (node 20)
# into tests/senders/node_modules from its lockfile.
$(VENV)/.senders: $(VENV)/bin/python tests/senders/requirements.txt
	$(PIP) install -q -r tests/senders/requirements.txt
	touch $@

tests/senders/node_modules/.installed: tests/senders/package.json tests/senders/package-lock.json
	command -v npm >/dev/null || { echo "npm (node 20) is needed for tests/senders.rs" >&2; exit 1; }
	npm ci --prefix tests/senders --no-audit --no-fund --silent
	touch $@

$(VENV)/.sam: $(VENV)/bin/python
	$(PIP) install -q 'aws-sam-cli>=1.140,<2' 'cfn-lint>=1.20,<2'
	touch $@

# The deploy path, offline: lint the template, deploy it into moto's CloudFormation with three
# parameter sets (tests/deploy/deploy_in_moto.py), build the package as `sam build` does (no
# container), check the binary's glibc needs against Amazon Linux 2023 (2.34).
sam-check: $(VENV)/.sam $(VENV)/.moto
	$(VENV)/bin/cfn-lint template.yaml
	$(VENV)/bin/python tests/deploy/deploy_in_moto.py
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-west-1 $(VENV)/bin/sam validate --lint
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-west-1 $(VENV)/bin/sam build
	scripts/check-glibc .aws-sam/build/BridgeFunction/bootstrap 2.34

# What `sam publish` takes (scripts/package.py): `sam validate --lint`, `sam build` (the release
# binary through build-BridgeFunction, in the one target dir), then `sam package` into moto's S3
# on loopback (offline; PACKAGE_BUCKET=... packages into that real bucket instead) as
# .aws-sam/packaged.yaml, checked: code, LICENSE and README uploaded, SemanticVersion equal to
# the binary's. SOURCE_URL=https://... adds HomePageUrl and SourceCodeUrl.
PACKAGE_BUCKET ?=
SOURCE_URL ?=
package: $(VENV)/.sam $(VENV)/.moto
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-central-1 $(VENV)/bin/sam validate --lint
	SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION=eu-central-1 $(VENV)/bin/sam build
	$(VENV)/bin/python scripts/package.py --version "$$(.aws-sam/build/BridgeFunction/bootstrap --version | cut -d' ' -f2)" \
		$(if $(PACKAGE_BUCKET),--bucket $(PACKAGE_BUCKET)) $(if $(SOURCE_URL),--source-url $(SOURCE_URL))

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The mapping's JSON Schema, generated from the Rust types (editors: see examples/mapping.yaml).
schema: build
	$(BIN)/connect-task-bridge schema > schema/mapping.schema.json

check: build
	CONNECT_INSTANCE_ID=$(DEMO_INSTANCE) CONNECT_CONTACT_FLOW_ID=$(DEMO_FLOW) \
		$(BIN)/connect-task-bridge check --mapping $(MAPPING)

render: build
	CONNECT_INSTANCE_ID=$(DEMO_INSTANCE) CONNECT_CONTACT_FLOW_ID=$(DEMO_FLOW) \
		$(BIN)/connect-task-bridge render $(EVENT) --mapping $(MAPPING)

# The stand-in on its own, for poking at it with the AWS CLI or `connect-task-bridge send`.
standin: build
	$(BIN)/connect-standin

release:
	$(CARGO) build --release --locked -p connect-task-bridge --bin connect-task-bridge

# `sam build` (BuildMethod: makefile) calls this with ARTIFACTS_DIR set: the package is the
# release binary as `bootstrap` plus the mapping files.
build-BridgeFunction: release
	cp $(CARGO_TARGET_DIR)/release/connect-task-bridge $(ARTIFACTS_DIR)/bootstrap
	for f in $(PACKAGE_FILES); do mkdir -p $(ARTIFACTS_DIR)/$$(dirname $$f) && cp $$f $(ARTIFACTS_DIR)/$$f; done

clean:
	$(CARGO) clean
