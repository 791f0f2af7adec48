"""What runs inside the container's new namespaces, as its PID 1 (init) or joining them
(exec): mounts, pivot_root, capabilities, the final execve.

May import: the standard library only, and other modules of this folder; nothing of shellctr
outside it. Everything the final step touches is imported before the root switch."""

# How unshare (run) and exec start init.py: from the package, so Python loads its cached
# bytecode instead of compiling it (as it would for a script) on every start. Here, not in
# init.py: the shellctr process that starts it need not import init (ctypes, libc).
ENTRY = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from shellctr.inside.init import main; main(sys.argv[2])")
