"""`medground` commands: train (see the module that implements them)."""
