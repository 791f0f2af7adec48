"""The verbs' logic: containers and their one lifecycle, images, archives, commit, copy,
networks, volumes, the system verbs. The engine takes the store's lock, registers each
step's undo, and reaches the host only through the door (core.host, core.facts).

May import: shellctr.parts, shellctr.core, and shellctr.inside (for the spec it writes and
the steps it shows). Never shellctr.cli."""
