"""portwatch tools: device emulators, broker and process helpers, demo, benchmark, the CLI."""
