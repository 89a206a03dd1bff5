"""`medground` commands: data_phantom (see the module that implements them)."""
