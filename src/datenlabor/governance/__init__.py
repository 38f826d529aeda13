"""Trustworthy AI governance: AI register, impact assessment, fairness audits, marketplace.

Modules, one per noun: :mod:`definitions` (field and questionnaire YAML), :mod:`entries`
(versioned entries), :mod:`register`, :mod:`facts` (what the platform knows about its AI
services), :mod:`assessment`, :mod:`activation` (enforcement), :mod:`fairness` (metrics),
:mod:`audits` (runs, schedule, alerts), :mod:`report` (plots, PDF), :mod:`marketplace`.
"""
