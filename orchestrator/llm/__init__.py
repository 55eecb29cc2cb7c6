"""The LLM egress connector: policy per data class, reversible redaction, limits and usage records."""
