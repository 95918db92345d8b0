"""The ``recsys`` command line: the only place that reads config files and writes reports."""
