"""Errors of the comparison service; they carry the code and HTTP status the API answers with."""

from __future__ import annotations

from core.errors import ConflictError
from models.errors import ModelError


class ComparisonConfigError(ModelError):
    """The caller asked for something invalid: a bad scorer spec, weights or dataset."""

    code = "invalid_comparison"
    http_status = 400


class InvalidScorerError(ComparisonConfigError):
    code = "invalid_scorer"


class InvalidWeightsError(ComparisonConfigError):
    code = "invalid_weights"


class InvalidDatasetError(ComparisonConfigError):
    code = "invalid_dataset"


class ComparisonNotFoundError(ModelError):
    code = "comparison_not_found"
    http_status = 404


class BenchmarkNotFoundError(ModelError):
    code = "benchmark_not_found"
    http_status = 404


class BenchmarkNotResumableError(ConflictError, ModelError):
    """Only failed or interrupted benchmark runs can be resumed."""

    code = "benchmark_not_resumable"
