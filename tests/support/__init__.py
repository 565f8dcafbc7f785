"""Code the tests share: a model with two optimizers and numeric facts, a CLI entry that knows it."""
