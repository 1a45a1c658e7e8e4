"""What every layer shares: settings and the error base."""
