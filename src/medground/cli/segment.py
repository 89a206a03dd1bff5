"""`medground` commands: segment (see the module that implements them)."""
