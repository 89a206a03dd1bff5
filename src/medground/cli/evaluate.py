"""`medground` commands: evaluate (see the module that implements them)."""
