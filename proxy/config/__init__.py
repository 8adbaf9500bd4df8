"""Reading and checking a config file into the frozen ``proxy.schema.Config``."""
