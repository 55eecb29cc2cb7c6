"""Side effects behind small interfaces: Slack, GitHub, credential providers, archive storage."""
