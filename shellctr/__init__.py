"""shellctr: a daemonless container engine whose every change to the host is a shell command.

The package's folders are its layers, from the user down to the kernel; a layer imports
only from the layers below it (tests/unit/test_layers.py holds them to it):

    cli/     argv -> typed requests, and printing       imports engine, parts, core
    engine/  the verbs' logic, locks and rollbacks      imports parts, core, inside (specs)
    parts/   pure builders of argv and values           imports core's values only
    core/    the door (host, facts), store, state       imports nothing above it
    inside/  what runs in the new namespaces            the standard library only
"""
