"""`medground` commands: data_convert (see the module that implements them)."""
