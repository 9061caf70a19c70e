"""Evaluation: analyses of human interpretability scores and, later, of proxy predictors against them."""
