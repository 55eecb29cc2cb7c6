"""KPIs of the micro-app programme: definitions (pure) and their computation in SQL (service)."""
