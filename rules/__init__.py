"""The analysts' rules files, shipped as package data: ``default.yaml`` is the rules a command uses without
``--rules``, wherever it runs (``tollguard rules template`` writes the same text; a test keeps them equal)."""
