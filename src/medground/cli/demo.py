"""`medground` commands: demo (see the module that implements them)."""
