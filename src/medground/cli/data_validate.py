"""`medground` commands: data_validate (see the module that implements them)."""
