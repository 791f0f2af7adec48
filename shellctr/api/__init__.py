"""The Docker Engine API (`shellctr system service`): HTTP requests on a unix socket
decoded into the engine's typed requests and calls, answered in Docker's JSON shapes and
stream framings. Stateless: every request reads and writes the same store as the CLI,
under the same lock; nothing is kept in the service's memory that a restart would lose.

May import: shellctr.engine, shellctr.parts, shellctr.core (and the standard library).
Never shellctr.cli."""
