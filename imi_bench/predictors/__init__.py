"""Proxy predictors of human interpretability: the protocol, the unit table and the baselines."""

from .base import PREDICTORS, Calibration, Predictor, get_predictor, list_predictors, register_predictor
from .table import KEY, family_columns, feature_columns, model_metadata, unit_table

__all__ = ["KEY", "PREDICTORS", "Calibration", "Predictor", "family_columns", "feature_columns", "get_predictor",
           "list_predictors", "model_metadata", "register_predictor", "unit_table"]
