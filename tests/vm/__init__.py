"""Tests of vm/run-tests, the runner of the integration suite in VMs."""
