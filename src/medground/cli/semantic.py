"""`medground` commands: semantic (see the module that implements them)."""
