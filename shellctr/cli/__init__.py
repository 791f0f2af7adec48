"""The command line: argv into typed requests for the engine, and printing (tables, JSON,
Go templates). No host work happens here.

May import: shellctr.api (only `system service`), shellctr.engine, shellctr.parts,
shellctr.core. Each verb imports what it needs
when it runs (`run` never pays for tabulate or pydantic)."""
