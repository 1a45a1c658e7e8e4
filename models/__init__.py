"""Models: the abstract `BaseModel`, its providers, pricing, and the registry."""
