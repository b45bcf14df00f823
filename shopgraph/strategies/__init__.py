"""Strategies: churn and response heads, uplift models, offer selection under budgets, ranked
audiences with control groups, and the exported lists."""
