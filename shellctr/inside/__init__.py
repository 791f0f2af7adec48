"""What runs inside the container's new namespaces, as its PID 1 (init) or joining them
(exec): mounts, pivot_root, capabilities, the final execve.

May import: the standard library only, and other modules of this folder; nothing of shellctr
outside it. Everything the final step touches is imported before the root switch."""
