"""The ground floor: the door to the host (host: the only runner and writer, with trace and
dry-run; facts: every host read), host commands as values (cmd), the store (atomic JSON, the
lock), the state models, the on-disk layout, ids and errors.

May import: the standard library, pydantic (state only), plumbum (host only, lazily), and
other core modules; and inside.jsonlite (standard library only), with which the store reads
records without json's Python half and the `re` it imports. Nothing above."""
