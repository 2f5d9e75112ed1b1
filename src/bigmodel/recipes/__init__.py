"""Recipes: the YAML recipe schema, the data each task type prepares, and the one run path that
every command (``bigmodel train``, ``finetune``, ``compress``, ...) goes through.

Layering: ``recipes`` may import every package but ``cli`` and ``serve``; nothing below it imports
it (see docs/INTERFACES.md).
"""
