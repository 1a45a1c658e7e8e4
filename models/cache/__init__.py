"""The response cache: an exact match of model, conversation, parameters and tenant answers without a provider call."""
