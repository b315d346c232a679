# lxcform — the two quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
DEMO_PATH ?= /tmp/lxcform-demo
DEMO_NAME ?= demo1

.PHONY: deps build demo demo-clean test lint unit ansible-test

deps:
	@bash scripts/setup-host.sh

build: deps
	$(CARGO) build --release --workspace

# Create and start a busybox container in $(DEMO_PATH), run a command in it, show its facts.
demo: build
	./target/release/lxcform ensure $(DEMO_NAME) --lxc-path $(DEMO_PATH) --template busybox \
	    --config-line lxc.tty.max=2 --command 'echo hello from $$(hostname)' --diff
	./target/release/lxcform ensure $(DEMO_NAME) --lxc-path $(DEMO_PATH) --template busybox \
	    --config-line lxc.tty.max=2
	./target/release/lxcform facts $(DEMO_NAME) --lxc-path $(DEMO_PATH) --json
	@echo "remove it with: ./target/release/lxcform ensure $(DEMO_NAME) --lxc-path $(DEMO_PATH) --state absent"

demo-clean:
	-./target/release/lxcform ensure $(DEMO_NAME) --lxc-path $(DEMO_PATH) --state absent

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Unit, binary and live tests (live ones need root).
unit: deps
	$(CARGO) test --workspace --no-fail-fast

ansible-test: deps
	bash tests/ansible/run.sh

test: lint unit ansible-test
