"""Recipes: the YAML recipe schema, the data each task type prepares, and the one run path that
every command (``bigmodel train``, ``finetune``, ``compress``, ...) goes through.

- ``schema`` / ``finetune_schema`` / ``task_types``: the recipe (``task:`` and four sections).
- ``run.run_recipe``: the run path; ``tasks``: the ``Task`` protocol and the task types;
  ``training``: optimizer, L2, augmentation, the trainer and its fit; ``rundir``: the run
  directory and its lock; ``results``: results.json and report.md; ``workers`` / ``launch``:
  torchrun.
- ``classification_data`` / ``text_data`` / ``speech_data``: the classification tasks' data.
- Trained runs: ``runs`` (evaluate, predict), ``explanations``, ``exports``, ``compress``,
  ``plan`` (memory of a recipe's run).

Layering: ``recipes`` may import every package but ``cli`` and ``serve``; nothing below it imports
it (see docs/INTERFACES.md).
"""
