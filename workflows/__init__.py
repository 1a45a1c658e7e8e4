"""Multi-step workflows: chained, parallel and conditional model calls, persisted and resumable."""
