"""Pure builders: argv lists and values from flags and records (network options, IPAM,
iptables rules, cgroup knobs, references, filters, tar checks, Dockerfiles and build
contexts). Nothing here runs a command, reads the host or touches the store: given the same
input, the same output.

May import: shellctr.core's value modules (errors, cmd, layout, ids, records), and other parts."""
