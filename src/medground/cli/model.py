"""`medground` commands: model (see the module that implements them)."""
