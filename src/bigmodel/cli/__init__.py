"""The ``bigmodel`` command: ``train``, ``evaluate``, ``predict``, ``info`` (one module each).

``bigmodel.cli.main.main(argv)`` runs it in-process and returns the exit code; ``recipe`` holds the
YAML recipe schema. Nothing else in bigmodel imports this package.
"""
