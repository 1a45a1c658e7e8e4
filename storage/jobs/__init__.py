"""Background jobs and batches: durable records in our database, executed in-process or by RQ workers over Redis."""
