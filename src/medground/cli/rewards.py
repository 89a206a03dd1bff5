"""`medground` commands: rewards (see the module that implements them)."""
