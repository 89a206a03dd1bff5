"""`medground` commands: predict (see the module that implements them)."""
