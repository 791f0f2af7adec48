"""What tests/vm/test_runner_vms.py has vm/run-tests run inside a VM."""
