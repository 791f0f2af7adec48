# shellctr: `make demo` and `make test` do all the set-up on a fresh Debian machine (as root).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# host tools the engine drives, plus what the venv needs; attr: setfattr (whiteouts in
# --dry-run scripts); dnsmasq-base: the resolver of user networks (the program only, no
# system service); iperf3: bench/network.py; buildah: the peer the Dockerfile parser's
# results are checked against (tests/integration/test_dockerfile_peer.py); docker-compose
# (1.29, on docker-py): a client of the Engine API service (tests/integration/test_api_compose.py)
APT_PACKAGES := busybox-static iproute2 iptables util-linux procps tar attr python3 python3-venv \
    gcc libc6-dev dnsmasq-base iperf3 buildah \
    docker-registry skopeo apache2-utils zstd podman runc docker-compose
# docker-registry: the loopback registry of the pull/push tests (distribution v2); skopeo:
# the other client that fills it and checks our pushes; apache2-utils: htpasswd for its
# basic auth; zstd: zstd-compressed layers (decompressed by the zstd tool) and their tests;
# podman, runc: the peer `build` is compared with in tests/integration/test_build_peer.py
# and bench/build.py (runc, as crun refuses this hybrid cgroup layout)
PYTEST_ARGS ?=
# the test VMs of vm/ (make test-vm, make test-vm-ci): only those targets install these
VM_APT_PACKAGES := qemu-system-x86 qemu-utils mmdebstrap e2fsprogs cpio
VM_ARGS ?=
# CI's bounded VM job: the cgroup v2 limits, and a smoke run of the lifecycle
VM_CI_TESTS := tests/integration/test_limits.py \
    tests/integration/test_container_verbs.py::test_pause_freezes_every_process_and_unpause_resumes \
    tests/integration/test_container_verbs.py::test_a_paused_container_can_be_stopped_and_removed \
    tests/integration/test_container_verbs.py::test_rm_force_kills_a_running_container_then_removes_it \
    tests/integration/test_detached.py::test_run_detached_prints_the_full_id_and_leaves_the_container_running \
    tests/integration/test_detached.py::test_create_then_start_runs_the_container_in_the_background \
    tests/integration/test_detached.py::test_detached_rm_container_is_removed_when_killed

.PHONY: all deps vm-deps venv image demo test lint unit integration test-vm test-vm-ci \
    test-vm-clean bench clean

all: test

deps:  ## install the Debian packages that are missing (needs root)
	@missing=""; for pkg in $(APT_PACKAGES); do \
	    dpkg-query --show --showformat='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' \
	        || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

vm-deps:  ## what the test VMs need: qemu, qemu-img, mmdebstrap (needs root)
	@missing=""; for pkg in $(VM_APT_PACKAGES); do \
	    dpkg-query --show --showformat='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' \
	        || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# compat mode: a plain path entry, no import hook that every start would pay for
	$(VENV)/bin/pip install --quiet --config-settings editable_mode=compat --editable '.[dev]'
	touch $@

# the per-container monitor: C, static, so that it costs each container under 1 MiB
build/shellctr-monitor: shellctr/monitor.c
	mkdir -p build
	cc -O2 -Wall -Wextra -Werror -static -o $@ $<

# a container's last step before its command, run from a sealed memfd copy (exec.c)
build/shellctr-exec: shellctr/exec.c
	mkdir -p build
	cc -O2 -Wall -Wextra -Werror -static -o $@ $<

# bytecode for shellctr's own modules: with PYTHONDONTWRITEBYTECODE set (as in some
# shells and CI), Python would otherwise compile every module on every command
build/.bytecode: $(shell find shellctr -name "*.py") $(VENV)/.installed
	mkdir -p build
	$(PY) -m compileall -q shellctr
	touch $@

venv: deps $(VENV)/.installed build/shellctr-monitor build/shellctr-exec build/.bytecode

image: venv  ## build the default busybox image from the host's static busybox
	bin/shellctr image build-busybox

demo: image  ## run a first container, showing the commands it runs
	bin/shellctr --trace run --rm busybox sh -c \
	    'echo "hello from $$(hostname): I am PID $$$$ as $$(id -un), in"; ls /'

lint: venv
	$(VENV)/bin/ruff check shellctr tests bench vm
	$(VENV)/bin/mypy shellctr vm/runner.py vm/leftovers.py

unit: venv
	$(VENV)/bin/pytest -q -n auto tests/unit $(PYTEST_ARGS)

integration: venv  ## real containers: needs root
	$(VENV)/bin/pytest -q -n auto tests/integration $(PYTEST_ARGS)

test: venv lint  ## the whole suite, in parallel
	$(VENV)/bin/pytest -q -n auto tests $(PYTEST_ARGS)

test-vm: venv vm-deps  ## the integration suite in disposable cgroup v2 VMs (root)
	vm/run-tests $(VM_ARGS) $(PYTEST_ARGS)

# CI's VM job, bounded (~6 min with a cold image): the runner's own test (a runner
# SIGKILLed while its VMs boot; a failing, a hung, a crashed VM; a guest ending itself at
# its deadline; a gone runner's VM found and cleaned), then the cgroup v2 limits and a
# lifecycle smoke run in VMs
test-vm-ci: venv vm-deps
	SHELLCTR_VM_SELFTEST=1 $(VENV)/bin/pytest -q -p no:cacheprovider tests/vm
	vm/run-tests -j 2 --timeout 480 --junit-xml build/vm-junit.xml $(VM_CI_TESTS)

# what crashed VM runs and old image recipes left: VMs whose runner is gone (killed), run
# directories of dead runs older than a day, base images of other recipes (removed)
test-vm-clean: venv
	vm/run-tests --clean

bench: image
	$(PY) bench/cli.py
	$(PY) bench/start.py
	$(PY) bench/lifecycle.py
	$(PY) bench/images.py
	$(PY) bench/network.py
	$(PY) bench/registry.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
