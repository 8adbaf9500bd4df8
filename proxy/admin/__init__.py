"""The admin API (health, status, metrics, traffic controls) and its client."""
