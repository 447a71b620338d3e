"""Validators: audit peers' work receipts by recomputation, sign verdicts and contribution tables, settle periods."""
