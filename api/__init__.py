"""HTTP layer: the application factory and one blueprint per area; no business logic here."""
