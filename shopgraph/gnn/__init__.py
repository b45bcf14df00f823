"""Graph learning: models that embed users and items, their training, evaluation, checkpoints."""
