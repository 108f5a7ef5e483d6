"""Validation: the quarantine reasons and the Great Expectations suites built from the contract."""
