"""Access: API keys with scopes, dashboard sessions, and per-key rate limits."""
