"""``python -m advparity``'s exit codes, the contract CI reads (``harness/cli.py`` says what each means)."""

EXIT_OK, EXIT_DISAGREE, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
