"""A/B testing: weighted variants, sticky assignment, and statistics that name a winner only when data do."""
